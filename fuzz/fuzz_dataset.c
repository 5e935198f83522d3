/* libFuzzer target of the dataset reader (fuzz/README.md): the rows of a
 * dataset file (store/dataset.c) as crl train --offline and crl dataset
 * read them.
 *
 * The input is one episodes row written straight into a dataset file with
 * SQLite (past crl_dataset_add's checks): its first bytes give the length,
 * the dims, the success flag and the type and size of each blob column,
 * the rest fills the blobs. The row is then read back through every
 * reader: crl_dataset_summary, crl_dataset_episode_ids, crl_dataset_episode
 * and crl_dataset_transitions; a replay record goes on to
 * crl_episode_decode. The file lives in /dev/shm (or TMPDIR). */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crl/dataset.h"
#include "crl/episode.h"

static char g_path[256];
static sqlite3 *g_db;

static void setup(void) {
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_path, sizeof g_path, "%s/crl_fuzz_dataset_%ld.db", dir, (long)getpid());
    unlink(g_path);
    crl_dataset *ds = NULL;
    crl_err err = {0};
    if (crl_dataset_open(g_path, 1, &ds, &err) != CRL_OK) abort();
    crl_dataset_close(ds);
    if (sqlite3_open(g_path, &g_db) != SQLITE_OK) abort();
    sqlite3_exec(g_db, "PRAGMA synchronous = OFF", NULL, NULL, NULL);
}

static void cleanup(void) {
    sqlite3_close(g_db);
    unlink(g_path);
}

static int64_t take(const unsigned char **p, size_t *n, int bytes) {
    int64_t v = 0;
    for (int i = 0; i < bytes && *n; i++, (*p)++, (*n)--) v |= (int64_t) * *p << (8 * i);
    return v;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n) {
    if (!g_db) {
        setup();
        atexit(cleanup);
    }
    const unsigned char *p = data;
    /* length, obs_dim, act_dim: mostly small, sometimes extreme. */
    int64_t T = take(&p, &n, 2) - 8, od = take(&p, &n, 1) - 2, ad = take(&p, &n, 1) - 2;
    const int succ = (int)(take(&p, &n, 1) & 1);
    int type[5];
    size_t len[5];
    for (int b = 0; b < 5; b++) {
        type[b] = (int)(take(&p, &n, 1) % 4); /* 0 exact, 1 fuzz size, 2 null, 3 text */
        len[b] = (size_t)take(&p, &n, 2);
    }
    const int64_t want[4] = {(T + 1) * od * 4, T * ad * 4, T * 4, T};
    sqlite3_exec(g_db, "DELETE FROM episodes", NULL, NULL, NULL);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(g_db,
                           "INSERT INTO episodes (created_at, task, model_hash, "
                           "mujoco_version, source, seed, length, obs_dim, act_dim, "
                           "ep_return, success, obs, act, reward, flags, record) VALUES "
                           "('x', 'pendulum', '0123456789abcdef', '2.2.2', 'fuzz', 7, "
                           "?1, ?2, ?3, 1.5, ?4, ?5, ?6, ?7, ?8, ?9)",
                           -1, &st, NULL) != SQLITE_OK)
        abort();
    sqlite3_bind_int64(st, 1, T);
    sqlite3_bind_int64(st, 2, od);
    sqlite3_bind_int64(st, 3, ad);
    sqlite3_bind_int(st, 4, succ);
    static unsigned char buf[1 << 20];
    for (int b = 0; b < 5; b++) {
        size_t want_b = b < 4 && want[b] >= 0 && want[b] < (int64_t)sizeof buf
                            ? (size_t)want[b]
                            : len[b];
        size_t k = type[b] == 0 ? want_b : len[b];
        if (k > sizeof buf) k = sizeof buf;
        size_t from = k < n ? k : n;
        memcpy(buf, p, from);
        memset(buf + from, 0, k - from);
        p += from;
        n -= from;
        if (type[b] == 2)
            sqlite3_bind_null(st, 5 + b);
        else if (type[b] == 3)
            sqlite3_bind_text(st, 5 + b, (const char *)buf, (int)(k < 64 ? k : 64),
                              SQLITE_TRANSIENT);
        else
            sqlite3_bind_blob64(st, 5 + b, buf, k, SQLITE_TRANSIENT);
    }
    const int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    if (!ok) return 0;

    crl_dataset *ds = NULL;
    crl_err err = {0};
    if (crl_dataset_open(g_path, 0, &ds, &err) != CRL_OK) return 0;
    crl_ds_task_summary *sum = NULL;
    int ns = 0;
    if (crl_dataset_summary(ds, &sum, &ns, &err) == CRL_OK) free(sum);
    int64_t *ids = NULL;
    int nid = 0;
    if (crl_dataset_episode_ids(ds, "pendulum", &ids, &nid, &err) == CRL_OK) {
        for (int i = 0; i < nid; i++) {
            crl_ds_episode ep = {0};
            if (crl_dataset_episode(ds, ids[i], &ep, &err) == CRL_OK && ep.record) {
                crl_episode_data d = {0};
                crl_episode_decode(ep.record, ep.record_n, &d, &err);
                crl_episode_data_free(&d);
            }
            crl_ds_episode_free(&ep);
        }
        free(ids);
    }
    crl_ds_transitions tr = {0};
    const int dims[][2] = {{(int)od, (int)ad}, {3, 1}};
    for (int i = 0; i < 2; i++)
        if (dims[i][0] > 0 && dims[i][1] > 0 &&
            crl_dataset_transitions(ds, "pendulum", dims[i][0], dims[i][1], &tr, &err) ==
                CRL_OK)
            crl_ds_transitions_free(&tr);
    crl_dataset_close(ds);
    return 0;
}
