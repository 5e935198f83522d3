/* Training a run from its configuration: the one path `crl train` and the
 * Python package (crl.train) share. Everything that can be checked without
 * the store is checked before the store is opened, so that a bad
 * configuration leaves no file and no run behind. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "crl/blas.h"
#include "crl/run.h"
#include "crl/scenario.h"

size_t crl_run_config_sizeof(void) {
    return sizeof(crl_run_config);
}

static void started(const crl_run_hooks *h, int64_t run_id, int resumed,
                    const crl_run_config *c) {
    if (h && h->started) h->started(run_id, resumed, c, h->ctx);
}

/* err's message prefixed with what. */
static int prefixed(crl_err *err, int rc, const char *what) {
    if (!err) return rc;
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return crl_errf(err, rc, "%s%s", what, msg);
}

int crl_run_l2m_base(const crl_continual_config *cc, const char *db, crl_store *store,
                     crl_l2m_base *b, crl_err *err) {
    if (!cc->l2m.base || !*cc->l2m.base)
        return crl_errf(err, CRL_EINVAL,
                        "--method l2m needs --base RUN[:TASK] (e.g. a 'crl train "
                        "--scenario pretrain --method mt' run)");
    const char *path = cc->l2m.base_db && *cc->l2m.base_db ? cc->l2m.base_db : db;
    crl_store *st = NULL;
    int rc = path == db && store ? CRL_OK : crl_store_open(path, 0, &st, err);
    if (!rc) rc = crl_l2m_base_load(st ? st : store, cc->l2m.base, b, err);
    crl_store_close(st);
    if (rc) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        crl_errf(err, rc, "--base %s (%s): %s", cc->l2m.base, path, msg);
    }
    return rc;
}

/* The store at db can be written (opened for writing, or created in its
 * folder): otherwise one line with the OS's reason, before SQLite reports
 * a read-only folder as a missing file. */
static int check_writable(const char *db, crl_err *err) {
    if (access(db, F_OK) == 0) {
        if (access(db, R_OK | W_OK) != 0)
            return crl_errf(err, CRL_EIO, "cannot write database %s: %s", db,
                            strerror(errno));
        return CRL_OK;
    }
    if (errno != ENOENT) return CRL_OK; /* crl_store_open reports it */
    char dir[4096];
    const char *slash = strrchr(db, '/');
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else {
        const size_t len = slash == db ? 1 : (size_t)(slash - db);
        if (len >= sizeof dir) return CRL_OK;
        memcpy(dir, db, len);
        dir[len] = 0;
    }
    if (access(dir, F_OK) == 0 && access(dir, W_OK | X_OK) != 0)
        return crl_errf(err, CRL_EIO, "cannot create database %s: folder %s: %s", db, dir,
                        strerror(errno));
    return CRL_OK;
}

static int train_scenario(const char *db, crl_run_config *r, int64_t resume,
                          const crl_run_hooks *h, int64_t *run_id, crl_err *err) {
    int rc;
    /* Offline: the whole dataset is checked before the store is opened. */
    if (!resume && crl_run_config_is_offline(r)) {
        crl_continual_config oc;
        if ((rc = crl_run_continual_config(r, &oc, err)) ||
            (rc = crl_continual_offline_check(&oc, err)))
            return rc;
    }
    /* l2m: the base is read (without writing) before the store is opened
     * for writing, so that a missing base leaves the store as it was. */
    crl_l2m_base base = {0};
    const crl_method *m0 = crl_method_find(r->method);
    if (!resume && m0 && (m0->impl->flags & CRL_METHOD_L2M_BASE)) {
        crl_continual_config bc;
        if ((rc = crl_run_continual_config(r, &bc, err)) ||
            (rc = crl_run_l2m_base(&bc, db, NULL, &base, err)))
            return rc;
    }
    crl_store *store = NULL;
    if ((rc = check_writable(db, err)) ||
        (rc = crl_store_open(db, resume ? 0 : 1, &store, err))) {
        crl_l2m_base_free(&base);
        return rc;
    }
    char status[16] = "";
    /* A resumed run continues with exactly the configuration it started with. */
    if (resume) {
        crl_run_config_free(r);
        if (!(rc = crl_run_config_load(store, resume, r, status, err)) &&
            strcmp(status, "finished") == 0)
            rc = crl_errf(err, CRL_EINVAL, "run %lld is already finished",
                          (long long)resume);
        /* One owner per run: refused, writing nothing, while another process
         * trains it (docs/robustness.md, "Run leases"). */
        if (!rc) rc = crl_store_lease_acquire(store, resume, err);
        if (rc) {
            crl_store_close(store);
            crl_l2m_base_free(&base);
            return rc;
        }
    }
    /* Read after the load: a resumed single run restores its position. */
    const int single_task = r->single_task;
    const crl_scenario *sc = crl_scenario_find(r->scenario ? r->scenario : "");
    if (!sc) {
        crl_store_close(store);
        crl_l2m_base_free(&base);
        return crl_errf(err, CRL_EINVAL, "unknown scenario '%s' (see 'crl scenarios')",
                        r->scenario ? r->scenario : "");
    }
    if (r->threads <= 0) r->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    crl_continual_config cc;
    const crl_method *meth = crl_method_find(r->method);
    const unsigned mflags = meth ? meth->impl->flags : 0;
    rc = crl_run_continual_config(r, &cc, err);
    if (!rc && (mflags & CRL_METHOD_L2M_BASE)) {
        if (crl_l2m_kind(cc.l2m.modulator) < 0)
            rc = crl_errf(err, CRL_EINVAL, "--modulator must be lora or ia3, got '%s'",
                          cc.l2m.modulator ? cc.l2m.modulator : "");
        if (!rc) rc = crl_l2m_check_routing(&cc.l2m, err);
        if (!rc && !base.params) rc = crl_run_l2m_base(&cc, db, store, &base, err);
    }
    /* One-task methods: one fresh run per scenario position (the
     * forward-transfer references); everything else: one run. */
    const int single = (mflags & CRL_METHOD_ONE_TASK) != 0;
    const int p0 = single ? (single_task >= 0 ? single_task : 0) : 0;
    const int p1 = single ? (single_task >= 0 ? single_task + 1 : sc->n_tasks) : 1;
    if (!rc && single && p0 >= sc->n_tasks)
        rc = crl_errf(err, CRL_EINVAL, "--single-task %d: %s has %d tasks", p0, sc->name,
                      sc->n_tasks);
    int p = p0;
    for (; !rc && p < p1 && !(h && h->stop && *h->stop); p++) {
        int64_t id = resume;
        cc.single_task = p;
        if (!resume) {
            /* The stored configuration names this run's position, so that a
             * resume finds it again. */
            if (single) r->single_task = p;
            rc = crl_run_create(store, r, &id, err);
            r->single_task = single_task;
            if (!rc) rc = crl_store_lease_acquire(store, id, err);
            if (rc) break;
        } else if (single) {
            cc.single_task = single_task;
        }
        *run_id = id;
        started(h, id, resume != 0, r);
        crl_continual_config run_cc = cc; /* l2m: with the base loaded above */
        run_cc.l2m_base = base.params ? &base : NULL;
        run_cc.note = h ? h->note : NULL;
        rc = crl_continual_run(&run_cc, store, id, resume != 0, h ? h->progress : NULL,
                               h ? h->ctx : NULL, h ? h->stop : NULL, err);
        if (resume) {
            p = p1;
            break;
        }
    }
    /* Stopped before a run (or between one-task runs) started. */
    if (!rc && p < p1)
        rc = *run_id ? crl_errf(err, CRL_EINTR, "interrupted before position %d", p)
                     : crl_errf(err, CRL_EINTR, "interrupted before a run was created");
    crl_store_close(store);
    crl_l2m_base_free(&base);
    return rc;
}

static int train_env(const char *db, crl_run_config *r, int64_t resume,
                     const crl_run_hooks *h, int64_t *run_id, crl_err *err) {
    int rc;
    crl_store *store = NULL;
    if (resume) {
        char status[16] = "";
        if ((rc = crl_store_open(db, 0, &store, err))) return rc;
        crl_run_config_free(r);
        if (!(rc = crl_run_config_load(store, resume, r, status, err)) &&
            strcmp(status, "finished") == 0)
            rc = crl_errf(err, CRL_EINVAL, "run %lld is already finished",
                          (long long)resume);
        crl_store_close(store);
        store = NULL;
        if (rc) return rc;
    }
    /* The task must compile before anything is written. */
    crl_train_config c;
    crl_env_spec *spec = NULL;
    if ((rc = crl_run_train_config(r, &c, err))) return rc;
    rc = c.env_xml ? crl_env_spec_create_xml(c.env_xml, &c.xml, &spec, err)
                   : crl_env_spec_create(c.env, &spec, err);
    if (rc) return rc == CRL_ENOTFOUND ? rc : prefixed(err, CRL_EINVAL, "");
    crl_env_spec_free(spec);
    if (r->threads <= 0) r->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if ((rc = check_writable(db, err)) || (rc = crl_store_open(db, 1, &store, err)))
        return rc;
    int64_t id = resume;
    if ((!resume && (rc = crl_run_create(store, r, &id, err))) ||
        (rc = crl_store_lease_acquire(store, id, err))) {
        crl_store_close(store);
        return rc;
    }
    if ((rc = crl_run_train_config(r, &c, err))) {
        crl_store_close(store);
        return rc;
    }
    c.resume = resume != 0;
    c.note = h ? h->note : NULL;
    *run_id = id;
    started(h, id, c.resume, r);
    rc = crl_train_run(&c, store, id, h ? h->progress : NULL, h ? h->ctx : NULL,
                       h ? h->stop : NULL, err);
    crl_store_close(store);
    return rc;
}

int crl_run_train(const char *db, crl_run_config *c, int64_t resume,
                  const crl_run_hooks *hooks, int64_t *run_id, crl_err *err) {
    int64_t id_local = 0;
    if (!run_id) run_id = &id_local;
    *run_id = 0;
    if (!db || !*db || !c || resume < 0)
        return crl_errf(err, CRL_EINVAL, "crl_run_train: bad argument");
    int rc;
    /* crl's parallelism is its own (two update lanes); BLAS runs one thread
     * per lane. */
    if ((rc = crl_blas_init(1, err))) return rc;
    /* A resumed run's kind is the stored one: a single-env run's method is
     * "sac". */
    int scenario = crl_run_config_is_scenario(c);
    if (resume) {
        crl_store *st = NULL;
        crl_run_info info;
        if ((rc = crl_store_open(db, 0, &st, err))) return rc;
        rc = crl_store_run_get(st, resume, &info, NULL, err);
        crl_store_close(st);
        if (rc) return rc;
        scenario = strcmp(info.method, "sac") != 0;
    } else if ((rc = crl_run_config_validate(c, err))) {
        return rc;
    }
    rc = scenario ? train_scenario(db, c, resume, hooks, run_id, err)
                  : train_env(db, c, resume, hooks, run_id, err);
    if (rc && rc != CRL_EINTR && *run_id) {
        char what[64];
        snprintf(what, sizeof what, "run %lld failed: ", (long long)*run_id);
        prefixed(err, rc, what);
    }
    return rc;
}
