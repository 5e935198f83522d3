/* The embedding API (include/crl/policy.h): policy files exported from real
 * (small) training runs act exactly as the training code does, episodes in
 * a caller's MuJoCo loop are crl's episodes, malformed files are refused,
 * and the installed library builds and runs examples/embed_mujoco.c out of
 * tree with the same returns as `crl eval`.
 *
 * The runs are trained once, by the crl binary (CRL_BIN), in an unchecked
 * fixture; the install test also needs CRL_SOURCE_DIR. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mujoco/mjxmacro.h>
#include <mujoco/mujoco.h>
#include <signal.h>
#include <sqlite3.h>

#include "core/blob.h"
#include "crl/blas.h"
#include "crl/env.h"
#include "crl/export.h"
#include "crl/methods.h"
#include "crl/policy.h"
#include "crl/runner.h"
#include "crl/sac.h"
#include "crl/scenario.h"
#include "crl/store.h"
#include "embed/format.h"
#include "envs/external.h"

/* ---- allocation counting (not under ASan, which owns malloc) ---------------- */

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_COUNT 0
#else
#define HAVE_COUNT 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static long g_calls;
static size_t g_largest;
static void note(size_t n) {
    __atomic_add_fetch(&g_calls, 1, __ATOMIC_RELAXED);
    if (n > g_largest) g_largest = n;
}
void *malloc(size_t n) {
    note(n);
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    note(a * b);
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    note(n);
    return __libc_realloc(p, n);
}
#endif

/* ---- the trained runs -------------------------------------------------------------- */

static char g_dir[256];
/* t1 (push, window-close, hammer) with three methods; a single-env run
 * (crl train --env); method single on one task of a locomotion scenario;
 * CSP on t1, finished, and interrupted in its second task (R_CSPMID); L2M
 * on t1 over an mt base (run 1 of the l2m store): LoRA with cosine routing
 * (run 2), IA3 with oracle routing (run 3) and LoRA with the arrow router
 * (run 4: an L2MP version 3 file). */
enum {
    R_PLAIN,
    R_FTN,
    R_PACKNET,
    R_SINGLE,
    R_LOCO,
    R_CSP,
    R_CSPMID,
    R_L2M,
    R_L2MO,
    R_L2MA,
    N_RUNS
};
static const char *const RUN_NAMES[N_RUNS] = {"ft1",        "ftn",      "packnet", "sac",
                                              "single",     "csp",      "csp-mid", "l2m",
                                              "l2m-oracle", "l2m-arrow"};
static const int64_t RUN_ID[N_RUNS] = {1, 1, 1, 1, 1, 1, 1, 2, 3, 4};
static char g_db[N_RUNS][320], g_pol[N_RUNS][320];

#define HIDDEN 32
#define LAYERS 2

static const char *bin(void) {
    const char *b = getenv("CRL_BIN");
    return b ? b : "./crl";
}

/* Run a command line through sh; returns its exit code. out (may be NULL)
 * receives stdout+stderr. */
static int sh(char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int sh(char *out, size_t n, const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[4200];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *f = popen(full, "r");
    if (!f) return -1;
    size_t got = 0;
    char tmp[4096];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (out && got + 1 < n) {
            size_t c = k < n - 1 - got ? k : n - 1 - got;
            memcpy(out + got, tmp, c);
            got += c;
        }
    if (out && n) out[got] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#define TRAIN_SMALL                                                                      \
    "--start-steps 100 --update-after 100 --update-every 50 --batch 32 --hidden 32 "     \
    "--layers 2 --eval-every 300 --eval-episodes 0 --threads 1 --quiet"

/* Rows of a count query on db (-1 if it cannot be read yet). */
static int count_rows(const char *db, const char *sql) {
    sqlite3 *h = NULL;
    int v = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(h, 2000);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return v;
}

/* A CSP run on t1 stopped (SIGINT: crl writes a checkpoint and exits 130)
 * once its second task has begun: its checkpoint has two anchors, an alpha
 * for task 0 only, and tasks 1 and 2 are evaluated at the centre. */
static int train_interrupted_csp(const char *db) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "exec %s train --db %s --scenario t1 --method csp --csp-rollouts 2 "
             "--csp-val-steps 20 --csp-scored 16 --steps-per-task 6000 " TRAIN_SMALL
             " >/dev/null 2>&1",
             bin(), db);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int started = 0;
    for (int i = 0; i < 24000 && !started; i++) {
        usleep(5000);
        started = count_rows(db, "SELECT count(*) FROM tasks WHERE idx = 1") == 1;
    }
    kill(pid, SIGINT);
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return started && WIFEXITED(st) && WEXITSTATUS(st) == 130 ? 0 : -1;
}

static void train_runs(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/crl_test_policy_XXXXXX");
    if (!mkdtemp(g_dir)) abort();
    char out[8192];
    for (int r = 0; r < N_RUNS; r++) {
        snprintf(g_db[r], sizeof g_db[r], "%s/%s.db", g_dir,
                 RUN_NAMES[r == R_L2MO || r == R_L2MA ? R_L2M : r]);
        snprintf(g_pol[r], sizeof g_pol[r], "%s/%s.crlp", g_dir, RUN_NAMES[r]);
        /* The mt base of the L2M runs: 7 tasks x 200 steps. */
        if (r == R_L2M &&
            sh(out, sizeof out,
               "%s train --db %s --scenario pretrain --method mt --steps-per-task 200 "
               "" TRAIN_SMALL,
               bin(), g_db[r])) {
            fprintf(stderr, "test_policy: the mt base failed: %s\n", out);
            abort();
        }
        int rc =
            r == R_CSPMID ? train_interrupted_csp(g_db[r])
            : r == R_CSP  ? sh(out, sizeof out,
                               "%s train --db %s --scenario t1 --method csp --seed 2 "
                                "--csp-rollouts 2 --csp-val-steps 20 --csp-scored 16 "
                                "--csp-epsilon 0 --steps-per-task 300 " TRAIN_SMALL,
                               bin(), g_db[r])
            : r == R_L2M
                ? sh(out, sizeof out,
                     "%s train --db %s --scenario t1 --method l2m --base 1:2 "
                     "--l2m-pool 6 --l2m-rank 2 --steps-per-task 300 " TRAIN_SMALL,
                     bin(), g_db[r])
            : r == R_L2MO
                ? sh(out, sizeof out,
                     "%s train --db %s --scenario t1 --method l2m --base 1 --l2m-oracle "
                     "--modulator ia3 --l2m-pool 6 --l2m-history 1 --steps-per-task "
                     "300 " TRAIN_SMALL,
                     bin(), g_db[r])
            : r == R_L2MA
                ? sh(out, sizeof out,
                     "%s train --db %s --scenario t1 --method l2m --base 1:2 "
                     "--l2m-router arrow --l2m-pool 6 --l2m-rank 2 --steps-per-task 300 "
                     "" TRAIN_SMALL,
                     bin(), g_db[r])
            : r == R_SINGLE
                ? sh(out, sizeof out,
                     "%s train --db %s --env halfcheetah-moon --steps 300 " TRAIN_SMALL,
                     bin(), g_db[r])
            : r == R_LOCO
                ? sh(out, sizeof out,
                     "%s train --db %s --scenario halfcheetah-forgetting-short "
                     "--method single --single-task 1 --steps-per-task 300 " TRAIN_SMALL,
                     bin(), g_db[r])
                : sh(out, sizeof out,
                     "%s train --db %s --scenario t1 --method %s --steps-per-task "
                     "300 " TRAIN_SMALL,
                     bin(), g_db[r], RUN_NAMES[r]);
        if (rc) {
            fprintf(stderr, "test_policy: training run %s failed: %s\n", RUN_NAMES[r],
                    out);
            abort();
        }
        char msg[600];
        if (crl_policy_export(g_db[r], RUN_ID[r], -1, g_pol[r], msg, sizeof msg)) {
            fprintf(stderr, "test_policy: export of %s failed: %s\n", RUN_NAMES[r], msg);
            abort();
        }
    }
}

static void remove_dir(void) {
    char out[256];
    if (g_dir[0]) sh(out, sizeof out, "rm -rf %s", g_dir);
}

static unsigned char *read_all(const char *path, size_t *n);
static size_t section_at(const unsigned char *b, size_t n, const char *tag, int idx);

static crl_policy *load_ok(const char *path) {
    char err[600] = "";
    crl_policy *p = NULL;
    int rc = crl_policy_load(path, &p, err, sizeof err);
    ck_assert_msg(rc == CRL_OK && p, "%s", err);
    return p;
}

/* ---- the training code's actor, restored independently of embed/ ------------------ */

typedef struct {
    crl_sac *sac;
    int n;          /* the run's tasks */
    float **actors; /* per task: the parameters the task acts with (not CSP, L2M) */
    size_t na;
    int csp;                     /* a CSP learner: acts with mix[task] */
    float mix[3][CRL_CSP_MAX_K]; /* crl_csp_eval_mix of each task */
    int l2m;                     /* an L2M learner: routes as crl evaluates */
} reference;

static void ref_free(reference *r) {
    for (int i = 0; r->actors && i < r->n; i++) free(r->actors[i]);
    free(r->actors);
    crl_sac_free(r->sac);
}

/* Restore the run with the training API: crl_sac_load for the learner,
 * packnet's own view per task, ftn's stored actors, CSP's evaluation alphas
 * (crl_csp_load, crl_csp_eval_mix), L2M's evaluation routing
 * (crl_l2m_eval_route). */
static void ref_load(int run, reference *r) {
    crl_err err = {0};
    crl_store *st = NULL;
    void *blob = NULL;
    size_t bn = 0;
    int tidx;
    int64_t step;
    ck_assert_msg(crl_store_open(g_db[run], 0, &st, &err) == CRL_OK, "%s", err.msg);
    ck_assert(crl_store_checkpoint_latest(st, RUN_ID[run], &tidx, &step, &blob, &bn,
                                          &err) == CRL_OK);
    crl_store_close(st);
    const int single = run == R_SINGLE;
    memset(r, 0, sizeof *r);
    r->n = single ? 1 : 3;
    r->csp = run == R_CSP || run == R_CSPMID;
    r->l2m = run == R_L2M || run == R_L2MO || run == R_L2MA;
    crl_sac_config sc;
    crl_sac_config_default(&sc, single ? 17 : 39, single ? 6 : 4, r->n);
    sc.hidden = HIDDEN;
    sc.layers = LAYERS;
    sc.max_act_batch = 16;
    crl_l2m_config lc;
    crl_l2m_config_default(&lc);
    if (r->csp) sc.csp_anchors = 3; /* one per task of t1 */
    float no_weights = 0;
    if (r->l2m) {
        /* As the fixture trained them: 6 modulators over the 7-head mt base,
         * LoRA rank 2 through base head 2 with the default history query
         * (H = 5: an L2MP version 2 file), or IA3 through head 0 with oracle
         * routing on one observation (H = 1: version 1). */
        crl_l2m_base base = {.obs_dim = 39,
                             .act_dim = 4,
                             .n_tasks = 7,
                             .hidden = HIDDEN,
                             .layers = LAYERS,
                             .head = run == R_L2MO ? 0 : 2,
                             .params = &no_weights}; /* only the shape is read */
        lc.pool = 6;
        lc.rank = 2;
        lc.modulator = run == R_L2MO ? "ia3" : "lora";
        if (run == R_L2MA) lc.router = "arrow";
        lc.oracle = run == R_L2MO;
        lc.history = run == R_L2MO ? 1 : CRL_L2M_HISTORY;
        ck_assert_msg(crl_l2m_sac_config(&lc, &base, &sc, &err) == CRL_OK, "%s", err.msg);
    }
    ck_assert(crl_sac_create(&sc, 0, &r->sac, &err) == CRL_OK);
    r->na = crl_sac_actor(r->sac)->n_params;
    r->actors = calloc((size_t)r->n, sizeof *r->actors);
    const void *sb = NULL, *mb = NULL;
    size_t sn = 0;
    uint64_t sn64 = 0, mn = 0;
    int32_t n_ftn = 0;
    crl_rbuf rb = {blob, bn, 0, 0};
    if (single) {
        ck_assert(crl_checkpoint_learner(blob, bn, &sb, &sn, NULL, &err) == CRL_OK);
    } else {
        /* agents/continual.c: "CRLCON01", i32 task, i32 n_ftn, 3 x i64, four
         * generators of 44 bytes, u64 + learner, u64 + method blob, actors. */
        ck_assert(bn > 8 && memcmp(blob, "CRLCON01", 8) == 0);
        rb.off = 12;
        crl_rbuf_get(&rb, &n_ftn, 4);
        rb.off += 24 + 4 * 44;
        crl_rbuf_get(&rb, &sn64, 8);
        sb = crl_rbuf_take(&rb, sn64);
        sn = sn64;
        crl_rbuf_get(&rb, &mn, 8);
        mb = crl_rbuf_take(&rb, mn);
        ck_assert(!rb.bad);
    }
    ck_assert_msg(crl_sac_load(r->sac, sb, sn, &err) == CRL_OK, "%s", err.msg);
    if (r->csp) {
        crl_csp_config cc;
        crl_csp_config_default(&cc);
        crl_csp csp;
        ck_assert(crl_csp_init(&csp, &cc, 3, 3, &err) == CRL_OK);
        ck_assert_msg(crl_csp_load(&csp, mb, mn, &err) == CRL_OK, "%s", err.msg);
        for (int j = 0; j < 3; j++) {
            /* A finished run has an alpha for every task; the interrupted
             * one for task 0 only. */
            ck_assert_int_eq(csp.has[j], run == R_CSP || j == 0);
            crl_csp_eval_mix(&csp, r->sac, j, r->mix[j]);
        }
        crl_csp_free(&csp);
        free(blob);
        return;
    }
    if (r->l2m) {
        crl_l2m m;
        ck_assert(crl_l2m_init(&m, &lc, 6, 3, 16, &err) == CRL_OK);
        ck_assert_msg(crl_l2m_load(&m, mb, mn, &err) == CRL_OK, "%s", err.msg);
        ck_assert_msg(crl_l2m_eval_route(&m, r->sac, &err) == CRL_OK, "%s", err.msg);
        crl_l2m_free(&m);
        free(blob);
        return;
    }
    const float *learner = crl_sac_actor_params(r->sac);
    crl_packnet pk;
    if (run == R_PACKNET) {
        ck_assert(crl_packnet_init(&pk, crl_sac_actor(r->sac), r->n, &err) == CRL_OK);
        ck_assert_msg(crl_packnet_load(&pk, mb, mn, &err) == CRL_OK, "%s", err.msg);
        ck_assert_int_eq(pk.task, 2); /* the run finished: every task has weights */
    }
    for (int j = 0; j < r->n; j++) {
        r->actors[j] = malloc(r->na * sizeof(float));
        if (run == R_PACKNET)
            crl_packnet_view(&pk, learner, j, r->actors[j]);
        else if (run == R_FTN && j < n_ftn)
            memcpy(r->actors[j], (const char *)blob + rb.off + j * r->na * sizeof(float),
                   r->na * sizeof(float));
        else
            memcpy(r->actors[j], learner, r->na * sizeof(float));
    }
    if (run == R_FTN) ck_assert_int_eq(n_ftn, 3);
    if (run == R_PACKNET) crl_packnet_free(&pk);
    free(blob);
}

/* Deterministic (or sampled, with a copy of rng) training-code actions. */
static void ref_act(reference *r, int task, int B, const float *obs, int det,
                    crl_rng *rng, float *act) {
    if (r->csp)
        crl_sac_set_act_mix(r->sac, r->mix[task]);
    else if (!r->l2m)
        memcpy(crl_sac_actor_params(r->sac), r->actors[task], r->na * sizeof(float));
    crl_sac_act(r->sac, B, obs, task, det, rng, act);
}

/* 1,000 observations of task: 5 seeded episodes of random actions. */
static float *collect_obs(const char *task, int n, int *obs_dim) {
    crl_err err = {0};
    crl_env_spec *s = NULL;
    crl_env *e = NULL;
    ck_assert(crl_env_spec_create(task, &s, &err) == CRL_OK);
    ck_assert(crl_env_create(s, &e, &err) == CRL_OK);
    const int O = crl_env_obs_dim(s), A = crl_env_act_dim(s);
    float *obs = malloc(sizeof(float) * (size_t)n * O), act[64];
    crl_rng rng;
    crl_rng_seed(&rng, 4242);
    crl_env_reset(e, 1, obs);
    for (int i = 1; i < n; i++) {
        for (int k = 0; k < A; k++) act[k] = (float)crl_rng_range(&rng, -1.0, 1.0);
        crl_step_info info;
        crl_env_step(e, act, obs + (size_t)i * O, &info);
        if (info.terminal || info.truncated)
            crl_env_reset(e, (uint64_t)i, obs + (size_t)i * O);
    }
    crl_env_free(e);
    crl_env_spec_free(s);
    *obs_dim = O;
    return obs;
}

static void check_bitwise(int run) {
    reference r;
    ref_load(run, &r);
    crl_policy *p = load_ok(g_pol[run]);
    ck_assert_int_eq(crl_policy_num_tasks(p), r.n);
    ck_assert_int_eq(crl_policy_set_batch(p, 16), CRL_OK);
    const int A = crl_policy_act_dim(p);
    for (int t = 0; t < r.n; t++) {
        int O;
        float *obs = collect_obs(crl_policy_task_name(p, t), 1000, &O);
        ck_assert_int_eq(O, crl_policy_obs_dim(p));
        float a[16 * 8], b[16 * 8];
        int differ = 0;
        for (int i = 0; i < 1000; i++) {
            ck_assert_int_eq(crl_policy_act(p, t, obs + (size_t)i * O, a,
                                            CRL_POLICY_DETERMINISTIC, NULL),
                             CRL_OK);
            ref_act(&r, t, 1, obs + (size_t)i * O, 1, NULL, b);
            differ += memcmp(a, b, sizeof(float) * A) != 0;
        }
        ck_assert_msg(differ == 0, "run %s task %d: %d of 1000 actions differ",
                      RUN_NAMES[run], t, differ);
        /* Batches of 16 against batches of 16. */
        for (int i = 0; i + 16 <= 1000; i += 16) {
            crl_policy_act_batch(p, t, 16, obs + (size_t)i * O, a,
                                 CRL_POLICY_DETERMINISTIC, NULL);
            ref_act(&r, t, 16, obs + (size_t)i * O, 1, NULL, b);
            ck_assert(memcmp(a, b, sizeof(float) * 16 * A) == 0);
        }
        /* Sampled actions with the same noise stream. */
        crl_rng g1, g2;
        crl_rng_seed(&g1, 99);
        g2 = g1;
        for (int i = 0; i < 100; i++) {
            crl_policy_act(p, t, obs + (size_t)i * O, a, CRL_POLICY_SAMPLE, &g1);
            ref_act(&r, t, 1, obs + (size_t)i * O, 0, &g2, b);
            ck_assert(memcmp(a, b, sizeof(float) * A) == 0);
        }
        /* Not a degenerate policy: tasks and observations change the action. */
        float a0[8], a1[8];
        crl_policy_act(p, t, obs, a0, CRL_POLICY_DETERMINISTIC, NULL);
        crl_policy_act(p, t, obs + 100 * (size_t)O, a1, CRL_POLICY_DETERMINISTIC, NULL);
        ck_assert(memcmp(a0, a1, sizeof(float) * A) != 0);
        free(obs);
    }
    crl_policy_free(p);
    ref_free(&r);
}

START_TEST(test_act_bitwise_plain) {
    check_bitwise(R_PLAIN);
    check_bitwise(R_SINGLE);
}
END_TEST

START_TEST(test_act_bitwise_ftn) {
    check_bitwise(R_FTN);
}
END_TEST

/* CSP: every task acts at its stored alpha in a subspace of more than one
 * anchor (the run keeps one: seed 2, epsilon 0). */
START_TEST(test_act_bitwise_csp) {
    check_bitwise(R_CSP);
    crl_policy *p = load_ok(g_pol[R_CSP]);
    ck_assert_str_eq(crl_policy_method(p), "csp");
    crl_policy_free(p);
    size_t n;
    unsigned char *b = read_all(g_pol[R_CSP], &n);
    ck_assert_uint_ge(pol_get_u32(b + section_at(b, n, "CSPT", 0)), 2);
    free(b);
}
END_TEST

/* CSP interrupted in task 1: two anchors, the second still training; task
 * 0 at its stored alpha [1, 0], tasks 1 and 2 at the centre [0.5, 0.5]. */
START_TEST(test_act_bitwise_csp_unfinished) {
    check_bitwise(R_CSPMID);
    size_t n;
    unsigned char *b = read_all(g_pol[R_CSPMID], &n);
    size_t at = section_at(b, n, "CSPT", 0);
    ck_assert_uint_eq(pol_get_u32(b + at), 2);
    const float want[3][2] = {{1, 0}, {0.5f, 0.5f}, {0.5f, 0.5f}};
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < 2; i++)
            ck_assert_uint_eq(pol_get_u32(b + at + 16 + 4 * (size_t)(2 * t + i)),
                              pol_f32_bits(want[t][i]));
    free(b);
}
END_TEST

/* L2M: cosine routing (LoRA) and oracle routing by task (IA3). */
START_TEST(test_act_bitwise_l2m) {
    check_bitwise(R_L2M);
    check_bitwise(R_L2MO);
    crl_policy *p = load_ok(g_pol[R_L2MO]);
    ck_assert_str_eq(crl_policy_method(p), "l2m");
    crl_policy_free(p);
    /* Arrow: an L2MP version 3 section with routing 2, acting as crl
     * evaluates (prototypes recomputed from the pool's parameters). */
    check_bitwise(R_L2MA);
    size_t n;
    unsigned char *b = read_all(g_pol[R_L2MA], &n);
    const size_t at = section_at(b, n, "L2MP", 0);
    ck_assert(at > 0);
    ck_assert_uint_eq(pol_get_u32(b + at - 12), 3); /* the section's version */
    ck_assert_uint_eq(pol_get_u32(b + at + 20), POL_ROUTE_ARROW);
    free(b);
}
END_TEST

START_TEST(test_act_bitwise_packnet) {
    check_bitwise(R_PACKNET);
    /* The views differ: task 0 acts with fewer weights than task 2. */
    crl_policy *p = load_ok(g_pol[R_PACKNET]);
    int O;
    float *obs = collect_obs("push", 10, &O), a0[4], a2[4];
    crl_policy_act(p, 0, obs, a0, CRL_POLICY_DETERMINISTIC, NULL);
    crl_policy_act(p, 2, obs, a2, CRL_POLICY_DETERMINISTIC, NULL);
    ck_assert(memcmp(a0, a2, sizeof a0) != 0);
    ck_assert_str_eq(crl_policy_method(p), "packnet");
    free(obs);
    crl_policy_free(p);
}
END_TEST

/* ---- single tasks and metadata
 * ---------------------------------------------------------- */

START_TEST(test_export_one_task) {
    char path[400], msg[600];
    snprintf(path, sizeof path, "%s/one.crlp", g_dir);
    static const int runs[] = {R_PLAIN, R_FTN, R_PACKNET, R_CSP, R_L2M, R_L2MO};
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        const int run = runs[k];
        ck_assert_msg(
            crl_policy_export(g_db[run], RUN_ID[run], 2, path, msg, sizeof msg) == CRL_OK,
            "%s", msg);
        crl_policy *one = load_ok(path), *all = load_ok(g_pol[run]);
        ck_assert_int_eq(crl_policy_num_tasks(one), 1);
        ck_assert_str_eq(crl_policy_task_name(one, 0), "hammer");
        ck_assert_int_eq(crl_policy_task_position(one, 0), 2);
        int O;
        float *obs = collect_obs("hammer", 50, &O), a[4], b[4];
        for (int i = 0; i < 50; i++) {
            crl_policy_act(one, 0, obs + (size_t)i * O, a, CRL_POLICY_DETERMINISTIC,
                           NULL);
            crl_policy_act(all, 2, obs + (size_t)i * O, b, CRL_POLICY_DETERMINISTIC,
                           NULL);
            ck_assert(memcmp(a, b, sizeof a) == 0);
        }
        free(obs);
        crl_policy_free(one);
        crl_policy_free(all);
    }
    /* Positions the run does not have, and runs that do not exist. */
    ck_assert_int_eq(crl_policy_export(g_db[R_PLAIN], 1, 3, path, msg, sizeof msg),
                     CRL_EINVAL);
    ck_assert(strstr(msg, "no task 3") != NULL);
    ck_assert_int_eq(crl_policy_export(g_db[R_PLAIN], 7, -1, path, msg, sizeof msg),
                     CRL_ENOTFOUND);
    ck_assert_int_eq(crl_policy_export(g_db[R_SINGLE], 1, 1, path, msg, sizeof msg),
                     CRL_EINVAL);

    /* A method without an export (mt trains bases, not continual agents),
     * and a damaged checkpoint. */
    char db[400];
    snprintf(db, sizeof db, "%s/other.db", g_dir);
    crl_store *st = NULL;
    crl_err err = {0};
    ck_assert(crl_store_open(db, 1, &st, &err) == CRL_OK);
    const char *methods[2] = {"mt", "ft1"};
    for (int i = 0; i < 2; i++) {
        crl_kv kv[4] = {{"scenario", "t1", 0},
                        {"method", methods[i], 0},
                        {"hidden", NULL, HIDDEN},
                        {"layers", NULL, LAYERS}};
        int64_t id = 0;
        ck_assert(crl_store_run_create(st, methods[i], "t1", 0, kv, 4, &id, &err) ==
                  CRL_OK);
        ck_assert(crl_store_checkpoint_put(st, id, 0, 10, "CRLCON01garbage", 15, &err) ==
                  CRL_OK);
    }
    crl_store_close(st);
    ck_assert_int_eq(crl_policy_export(db, 1, -1, path, msg, sizeof msg), CRL_EINVAL);
    ck_assert_msg(strstr(msg, "'mt' is not supported") != NULL, "%s", msg);
    ck_assert_int_eq(crl_policy_export(db, 2, -1, path, msg, sizeof msg), CRL_ECORRUPT);
    ck_assert_msg(strstr(msg, "not a continual-run checkpoint") != NULL, "%s", msg);

    crl_policy *p = load_ok(g_pol[R_SINGLE]);
    ck_assert_str_eq(crl_policy_task_name(p, 0), "halfcheetah-moon");
    ck_assert_int_eq(crl_policy_task_position(p, 0), -1);
    ck_assert_int_eq(crl_policy_task_max_steps(p, 0), 1000);
    ck_assert_int_eq(crl_policy_task_frame_skip(p, 0), 5);
    ck_assert_str_eq(crl_policy_method(p), "sac");
    ck_assert_str_eq(crl_policy_crl_version(p), CRL_VERSION_STRING);
    ck_assert_ptr_null(crl_policy_task_name(p, 1));
    float o[17] = {0}, a[6];
    ck_assert_int_eq(crl_policy_act(p, 1, o, a, CRL_POLICY_DETERMINISTIC, NULL),
                     CRL_EINVAL);
    ck_assert(strstr(crl_policy_error(p), "task 1") != NULL);
    ck_assert_int_eq(crl_policy_act(p, 0, o, a, CRL_POLICY_SAMPLE, NULL), CRL_EINVAL);
    ck_assert_int_eq(crl_policy_act_batch(p, 0, 2, o, a, CRL_POLICY_DETERMINISTIC, NULL),
                     CRL_EINVAL);
    crl_policy_free(p);
}
END_TEST

START_TEST(test_cli_export) {
    char out[8192], path[400];
    snprintf(path, sizeof path, "%s/cli.crlp", g_dir);
    ck_assert_int_eq(
        sh(out, sizeof out, "%s export --db %s --run 1 -o %s", bin(), g_db[R_FTN], path),
        0);
    ck_assert_msg(strstr(out, "ftn policy, 3 tasks") != NULL, "%s", out);
    crl_policy *p = load_ok(path);
    crl_policy_free(p);
    ck_assert_int_eq(sh(out, sizeof out, "%s export --db %s --run 1", bin(), g_db[R_FTN]),
                     2);
    ck_assert_msg(strstr(out, "required") != NULL, "%s", out);
    ck_assert_int_eq(
        sh(out, sizeof out, "%s export --db %s --run 5 -o %s", bin(), g_db[R_FTN], path),
        2);
    ck_assert_msg(strstr(out, "run 5") != NULL, "%s", out);
    ck_assert_int_eq(sh(out, sizeof out, "%s export --task-xml nope -o -", bin()), 2);
    ck_assert_msg(strstr(out, "unknown task") != NULL, "%s", out);
    ck_assert_int_eq(
        sh(out, sizeof out, "%s export --task-xml pendulum -o - | head -c 200", bin()),
        0);
    ck_assert_msg(strstr(out, "<mujoco") != NULL || strstr(out, "crl") != NULL, "%s",
                  out);
}
END_TEST

/* ---- the MuJoCo side
 * ------------------------------------------------------------------- */

/* Field-for-field equality of two compiled models. */
static const char *model_diff(const mjModel *a, const mjModel *b) {
#define X(n)                                                                             \
    if (a->n != b->n) return #n;
    // cppcheck-suppress unknownMacro
    MJMODEL_INTS
#undef X
    return NULL;
}

static const char *model_arrays_diff(const mjModel *ma, const mjModel *mb) {
    MJMODEL_POINTERS_PREAMBLE(ma)
#define X(type, name, nr, nc)                                                            \
    if (memcmp(ma->name, mb->name, sizeof(type) * (size_t)ma->nr * (size_t)(nc)))        \
        return #name;
    MJMODEL_POINTERS
#undef X
    if (memcmp(&ma->opt, &mb->opt, sizeof ma->opt)) return "opt";
    if (memcmp(&ma->stat, &mb->stat, sizeof ma->stat)) return "stat";
    return NULL;
}

START_TEST(test_task_xml_is_crls_model) {
    /* Every built-in task: its MJCF, compiled by the caller and prepared,
     * is crl's own model field for field. */
    const crl_env_entry *list;
    int n = crl_env_list(&list);
    char path[400];
    snprintf(path, sizeof path, "%s/task.xml", g_dir);
    for (int i = 0; i < n; i++) {
        crl_err err = {0};
        crl_env_spec *s = NULL;
        ck_assert(crl_env_spec_create(list[i].name, &s, &err) == CRL_OK);
        char *text = NULL;
        size_t len = 0;
        ck_assert_msg(crl_env_task_xml(s, &text, &len, &err) == CRL_OK, "%s", err.msg);
        ck_assert(strstr(text, "<include") == NULL);
        FILE *f = fopen(path, "wb");
        fwrite(text, 1, len, f);
        fclose(f);
        free(text);
        char msg[1000] = "";
        mjModel *m = mj_loadXML(path, NULL, msg, sizeof msg);
        ck_assert_msg(m != NULL, "%s: %s", list[i].name, msg);
        ck_assert_msg(crl_env_prepare_model(s, m, &err) == CRL_OK, "%s", err.msg);
        const char *d = model_diff(crl_env_model(s), m);
        if (!d) d = model_arrays_diff(crl_env_model(s), m);
        ck_assert_msg(d == NULL, "task %s: the model differs in %s", list[i].name, d);
        mj_deleteModel(m);
        crl_env_spec_free(s);
    }
}
END_TEST

/* A policy for any built-in task with a random network (no training). */
static crl_policy *synthetic_policy(const char *task, uint64_t seed) {
    crl_err err = {0};
    crl_env_spec *s = NULL;
    ck_assert(crl_env_spec_create(task, &s, &err) == CRL_OK);
    crl_mlp_spec sp;
    crl_mlp m;
    crl_mlp_spec_cw(&sp, crl_env_obs_dim(s), 2 * crl_env_act_dim(s), 1, 2, 24);
    ck_assert(crl_mlp_init(&m, &sp, &err) == CRL_OK);
    float *params = malloc(m.n_params * sizeof(float));
    crl_rng rng;
    crl_rng_seed(&rng, seed);
    crl_mlp_init_params(&m, params, &rng);
    /* Larger output weights so the actions move the system. */
    for (size_t i = m.head_W; i < m.head_b; i++) params[i] *= 4.0f;
    char mods[2048];
    crl_env_modifiers(s, mods, sizeof mods);
    crl_pf_task t = {.net = 0,
                     .head = 0,
                     .view = -1,
                     .position = -1,
                     .env_kind = POL_ENV_BUILTIN,
                     .obs_dim = crl_env_obs_dim(s),
                     .act_dim = crl_env_act_dim(s),
                     .frame_skip = crl_env_frame_skip(s),
                     .max_steps = crl_env_max_steps(s),
                     .name = task,
                     .modifiers = mods};
    const float *nets[1] = {params};
    crl_pf_desc d = {.method = POL_METHOD_PLAIN,
                     .method_name = "test",
                     .scenario = "",
                     .mlp = &m,
                     .n_nets = 1,
                     .net_params = nets,
                     .n_tasks = 1,
                     .tasks = &t};
    unsigned char *buf = NULL;
    size_t n = 0;
    ck_assert(crl_pf_write(&d, &buf, &n, &err) == CRL_OK);
    crl_policy *p = NULL;
    char msg[600];
    ck_assert_msg(crl_policy_load_mem(buf, n, &p, msg, sizeof msg) == CRL_OK, "%s", msg);
    free(buf);
    free(params);
    crl_env_spec_free(s);
    return p;
}

/* One episode in crl's env and the same in a caller's loop on the task's
 * MJCF (crl_policy_*_mj): observations, rewards and ends bit for bit. */
static void check_episode(const char *task, uint64_t seed, int max_steps) {
    crl_policy *p = synthetic_policy(task, seed);
    char path[400], msg[600];
    snprintf(path, sizeof path, "%s/%s.xml", g_dir, task);
    ck_assert_msg(crl_policy_write_task_xml(p, 0, path, msg, sizeof msg) == CRL_OK, "%s",
                  msg);
    mjModel *m = mj_loadXML(path, NULL, msg, sizeof msg);
    ck_assert_msg(m != NULL, "%s", msg);
    ck_assert_msg(crl_policy_prepare_model(p, 0, m, msg, sizeof msg) == CRL_OK, "%s",
                  msg);
    mjData *d = mj_makeData(m);

    crl_err err = {0};
    crl_env_spec *s = NULL;
    crl_env *e = NULL;
    ck_assert(crl_env_spec_create(task, &s, &err) == CRL_OK);
    ck_assert(crl_env_create(s, &e, &err) == CRL_OK);
    const int O = crl_env_obs_dim(s), fs = crl_env_frame_skip(s);
    float obs[256], obs2[256], act[64];
    crl_env_reset(e, seed, obs);
    ck_assert_int_eq(crl_policy_reset_mj(p, 0, m, d, seed), CRL_OK);
    crl_policy_env *pe = NULL;
    /* The public per-mjData object sees the same start. */
    mjData *d2 = mj_makeData(m);
    ck_assert_msg(crl_policy_env_create(p, 0, m, &pe, msg, sizeof msg) == CRL_OK, "%s",
                  msg);
    crl_policy_env_reset(pe, d2, seed, obs2);
    ck_assert(memcmp(obs, obs2, sizeof(float) * O) == 0);
    double ret = 0;
    int steps = 0, moved = 0;
    for (;;) {
        crl_policy_act(p, 0, obs, act, CRL_POLICY_DETERMINISTIC, NULL);
        crl_step_info info;
        crl_env_step(e, act, obs, &info);
        ck_assert_int_eq(crl_policy_act_mj(p, 0, m, d), CRL_OK);
        for (int k = 0; k < fs; k++) mj_step(m, d);
        crl_policy_step st;
        ck_assert_int_eq(crl_policy_outcome_mj(p, 0, m, d, &st), CRL_OK);
        steps++;
        ck_assert_msg(pol_f32_bits(st.reward) == pol_f32_bits(info.reward),
                      "%s step %d: reward %.9g vs crl %.9g", task, steps,
                      (double)st.reward, (double)info.reward);
        ck_assert_int_eq(st.success, info.success);
        ck_assert_int_eq(st.terminal, info.terminal);
        ck_assert_int_eq(st.truncated, info.truncated);
        ck_assert_int_eq(st.steps, steps);
        ck_assert(memcmp(d->qpos, crl_env_data(e)->qpos, sizeof(mjtNum) * m->nq) == 0);
        ret += info.reward;
        moved |= d->qpos[0] != 0.0;
        if (info.terminal || info.truncated || steps >= max_steps) break;
    }
    ck_assert(moved);
    ck_assert(isfinite(ret));
    crl_policy_env_free(pe);
    mj_deleteData(d2);
    crl_env_free(e);
    crl_env_spec_free(s);
    mj_deleteData(d);
    mj_deleteModel(m);
    crl_policy_free(p);
}

START_TEST(test_episode_in_callers_loop) {
    check_episode("pendulum", 3, 200);
    check_episode("push", 5, 200);         /* mocap hand, puck, goal */
    check_episode("window-close", 6, 200); /* previous-frame observation */
    check_episode("halfcheetah-moon", 7, 300);
    check_episode("halfcheetah-defective_module", 8, 300); /* observation modifier */
    check_episode("ant-disabled_hard1", 9, 1000);          /* action modifier, terminal */
    check_episode("ant-inverted_actions", 10, 300);
}
END_TEST

START_TEST(test_mj_errors) {
    crl_policy *p = synthetic_policy("push", 1);
    char msg[600];
    /* Another task's model is refused with a clear message. */
    crl_err err = {0};
    crl_env_spec *s = NULL;
    ck_assert(crl_env_spec_create("hammer", &s, &err) == CRL_OK);
    const mjModel *other = crl_env_model(s);
    mjData *d = mj_makeData(other);
    ck_assert_int_eq(crl_policy_act_mj(p, 0, other, d), CRL_EINVAL);
    ck_assert_msg(strstr(crl_policy_error(p), "is not task 'push'") != NULL, "%s",
                  crl_policy_error(p));
    crl_policy_env *pe = NULL;
    ck_assert_int_eq(crl_policy_env_create(p, 0, other, &pe, msg, sizeof msg),
                     CRL_EINVAL);
    ck_assert_ptr_null(pe);
    ck_assert_int_eq(crl_policy_act_mj(p, 3, other, d), CRL_EINVAL);
    ck_assert_int_eq(crl_policy_act_mj(p, 0, NULL, d), CRL_EINVAL);
    mj_deleteData(d);
    crl_env_spec_free(s);
    crl_policy_free(p);
}
END_TEST

/* ---- allocation, threads -------------------------------------------------------------
 */

START_TEST(test_act_allocates_nothing) {
#if HAVE_COUNT
    crl_policy *p = load_ok(g_pol[R_PACKNET]);
    ck_assert_int_eq(crl_policy_set_batch(p, 8), CRL_OK);
    float obs[8 * 39] = {0}, act[8 * 4];
    crl_rng g;
    crl_rng_seed(&g, 1);
    crl_policy_act(p, 0, obs, act, CRL_POLICY_DETERMINISTIC, NULL); /* BLAS warm-up */
    long before = g_calls;
    for (int i = 0; i < 100; i++) {
        obs[0] = (float)i;
        crl_policy_act(p, i % 3, obs, act, CRL_POLICY_DETERMINISTIC, NULL);
        crl_policy_act(p, i % 3, obs, act, CRL_POLICY_SAMPLE, &g);
        crl_policy_act_batch(p, i % 3, 8, obs, act, CRL_POLICY_DETERMINISTIC, NULL);
    }
    long calls0 = g_calls - before;
    ck_assert_int_eq(calls0, 0);
    /* Nor do CSP's subspace forward and L2M's routed forward. */
    static const int others[] = {R_CSP, R_L2M, R_L2MO};
    for (size_t k = 0; k < sizeof others / sizeof others[0]; k++) {
        crl_policy *q = load_ok(g_pol[others[k]]);
        ck_assert_int_eq(crl_policy_set_batch(q, 8), CRL_OK);
        crl_policy_act(q, 0, obs, act, CRL_POLICY_DETERMINISTIC, NULL);
        before = g_calls;
        for (int i = 0; i < 30; i++) {
            obs[0] = (float)i;
            crl_policy_act(q, i % 3, obs, act, CRL_POLICY_DETERMINISTIC, NULL);
            crl_policy_act(q, i % 3, obs, act, CRL_POLICY_SAMPLE, &g);
            crl_policy_act_batch(q, i % 3, 8, obs, act, CRL_POLICY_DETERMINISTIC, NULL);
        }
        calls0 = g_calls - before;
        ck_assert_msg(calls0 == 0, "%s: %ld allocations", RUN_NAMES[others[k]], calls0);
        crl_policy_free(q);
    }
    /* act_mj allocates on the first call (binding), not after. */
    crl_err err = {0};
    crl_env_spec *s = NULL;
    ck_assert(crl_env_spec_create("push", &s, &err) == CRL_OK);
    const mjModel *m = crl_env_model(s);
    mjData *d = mj_makeData(m);
    ck_assert_int_eq(crl_policy_reset_mj(p, 0, m, d, 1), CRL_OK);
    /* (No ck_assert inside the counted loops: a passing check allocates.) */
    int bad = 0;
    before = g_calls;
    for (int i = 0; i < 20; i++) {
        crl_policy_step st;
        bad |= crl_policy_act_mj(p, 0, m, d);
        mj_step(m, d);
        bad |= crl_policy_outcome_mj(p, 0, m, d, &st);
    }
    long calls = g_calls - before;
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(calls, 0);
    mj_deleteData(d);
    crl_env_spec_free(s);
    crl_policy_free(p);
#else
    fprintf(stderr, "test_act_allocates_nothing: skipped under AddressSanitizer\n");
#endif
}
END_TEST

typedef struct {
    crl_policy *p;
    const float *obs;
    int O, A, n;
    float *out;
} thread_job;

static void *act_all(void *arg) {
    thread_job *j = arg;
    for (int rep = 0; rep < 3; rep++)
        for (int i = 0; i < j->n; i++)
            for (int t = 0; t < 3; t++)
                crl_policy_act(j->p, t, j->obs + (size_t)i * j->O,
                               j->out + ((size_t)i * 3 + t) * j->A,
                               CRL_POLICY_DETERMINISTIC, NULL);
    return NULL;
}

START_TEST(test_clones_on_threads) {
    crl_policy *p = load_ok(g_pol[R_FTN]);
    int O;
    const int n = 300, A = crl_policy_act_dim(p);
    float *obs = collect_obs("push", n, &O);
    float *want = malloc(sizeof(float) * n * 3 * A);
    thread_job single = {p, obs, O, A, n, want};
    act_all(&single);
    crl_policy *c[2];
    char msg[300];
    for (int k = 0; k < 2; k++)
        ck_assert_msg(crl_policy_clone(p, &c[k], msg, sizeof msg) == CRL_OK, "%s", msg);
    crl_policy_free(p); /* clones keep the weights alive */
    pthread_t th[2];
    thread_job jobs[2];
    for (int k = 0; k < 2; k++) {
        jobs[k] = (thread_job){c[k], obs, O, A, n, malloc(sizeof(float) * n * 3 * A)};
        pthread_create(&th[k], NULL, act_all, &jobs[k]);
    }
    for (int k = 0; k < 2; k++) {
        pthread_join(th[k], NULL);
        ck_assert(memcmp(jobs[k].out, want, sizeof(float) * n * 3 * A) == 0);
        free(jobs[k].out);
    }
    crl_policy_free(c[1]);
    crl_policy_free(c[0]);
    free(want);
    free(obs);
}
END_TEST

/* ---- malformed files -----------------------------------------------------------------
 */

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert(f != NULL);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len);
    ck_assert(fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void fix_crc(unsigned char *b, size_t n) {
    pol_put_u32(b + n - 4, crl_pf_crc32(0, b, n - 4));
}

/* Offset of the payload of the idx-th section with this tag, or 0. */
static size_t section_at(const unsigned char *b, size_t n, const char *tag, int idx) {
    size_t off = POL_HEADER_SIZE;
    while (off + 16 <= n - 4) {
        uint64_t len = pol_get_u64(b + off + 8);
        if (!memcmp(b + off, tag, 4) && idx-- == 0) return off + 16;
        off += 16 + (size_t)len;
    }
    return 0;
}

/* Load from memory: refused with code (0 = any error), a one-line message
 * containing needle, and (without ASan) no allocation larger than the file
 * would justify. */
static void expect_refused(const unsigned char *b, size_t n, int code,
                           const char *needle) {
    crl_policy *p = (crl_policy *)1;
    char msg[600] = "";
#if HAVE_COUNT
    g_largest = 0;
#endif
    int rc = crl_policy_load_mem(b, n, &p, msg, sizeof msg);
#if HAVE_COUNT
    ck_assert_msg(g_largest <= 4 * n + 65536, "allocated %zu bytes for a %zu-byte file",
                  g_largest, n);
#endif
    ck_assert_msg(rc != CRL_OK, "accepted (expected '%s')", needle);
    ck_assert_ptr_null(p);
    if (code) ck_assert_msg(rc == code, "code %d, expected %d: %s", rc, code, msg);
    ck_assert_msg(msg[0] && !strchr(msg, '\n'), "message '%s'", msg);
    ck_assert_msg(strstr(msg, needle) != NULL, "'%s' lacks '%s'", msg, needle);
}

START_TEST(test_malformed_refused) {
    size_t n;
    unsigned char *good = read_all(g_pol[R_PACKNET], &n);
    unsigned char *b = malloc(n + 64);
    crl_policy *p = NULL;
    char msg[600];
    ck_assert(crl_policy_load_mem(good, n, &p, msg, sizeof msg) == CRL_OK);
    crl_policy_free(p);

    expect_refused(good, 0, CRL_ECORRUPT, "empty");
    /* Truncated anywhere. */
    for (size_t k = 1; k < n; k += k < 200 ? 1 : 97)
        expect_refused(good, k, CRL_ECORRUPT, k < 8 ? "magic" : "truncated");
    /* Any single flipped byte. */
    for (size_t k = 0; k < n; k += k < 128 ? 1 : 13) {
        memcpy(b, good, n);
        b[k] ^= 0x5a;
        expect_refused(b, n, 0, "");
        if (k >= 48 && k < n - 4) expect_refused(b, n, CRL_ECORRUPT, "checksum");
    }
    /* Trailing garbage. */
    memcpy(b, good, n);
    expect_refused(b, n + 3, CRL_ECORRUPT, "after the end");
    /* Wrong magic, future and impossible versions. */
    memcpy(b, good, n);
    b[1] = 'X';
    expect_refused(b, n, CRL_ECORRUPT, "not a crl policy file");
    memcpy(b, good, n);
    pol_put_u32(b + 8, 2);
    expect_refused(b, n, CRL_EVERSION, "newer");
    pol_put_u32(b + 8, 0xFFFFFFFFu);
    expect_refused(b, n, CRL_EVERSION, "upgrade crl");

    /* Absurd sizes, with a valid checksum, refused before allocation. */
    struct {
        const char *tag;
        int idx;
        size_t field; /* byte offset in the payload */
        int bytes;    /* 4 or 8 */
        uint64_t value;
        const char *needle;
    } cases[] = {
        {"NET ", 0, 0, 4, 0x7FFFFFFFu, "out of range"},   /* in_dim */
        {"NET ", 0, 0, 4, 0xFFFFFFFFu, "out of range"},   /* in_dim -1 */
        {"NET ", 0, 4, 4, 0x80000000u, "out of range"},   /* out_dim negative */
        {"NET ", 0, 8, 4, 0x7FFFFFFFu, "heads"},          /* heads */
        {"NET ", 0, 12, 4, 0xFFFFFFF0u, "hidden layers"}, /* n_hidden */
        {"NET ", 0, 16, 4, 0xFFFFFFFFu, "width"},         /* hidden[0] */
        {"NET ", 0, 16, 4, 65536, "parameters"},          /* a real but absent shape */
        {"META", 0, 4, 4, 0x7FFFFFFFu, "tasks"},          /* num_tasks */
        {"META", 0, 4, 4, 0, "tasks"},
        {"META", 0, 8, 4, 100000, "networks"}, /* num_nets */
        {"META", 0, 0, 4, 4, "PKNT sections"}, /* CSP without its table */
        {"META", 0, 0, 4, 5, "PKNT sections"}, /* L2M without its pool */
        {"META", 0, 0, 4, 77, "method"},
        {"TASK", 0, 0, 4, 0xFFFFFFFFu, "network"},       /* net index */
        {"TASK", 0, 4, 4, 1000000, "head"},              /* head */
        {"TASK", 1, 8, 4, 0x7FFFFFFFu, "view"},          /* packnet view */
        {"TASK", 0, 20, 4, 0x7FFFFFFFu, "observation"},  /* obs_dim */
        {"TASK", 2, 36, 2, 0xFFFF, "name"},              /* name length */
        {"PKNT", 0, 8, 4, 0xFFFFFFFFu, "impossible"},    /* packnet tasks */
        {"PKNT", 0, 16, 8, (uint64_t)1 << 61, "owners"}, /* n_params */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(b, good, n);
        size_t at = section_at(b, n, cases[c].tag, cases[c].idx);
        ck_assert(at > 0);
        at += cases[c].field;
        if (cases[c].bytes == 4) pol_put_u32(b + at, (uint32_t)cases[c].value);
        if (cases[c].bytes == 8) pol_put_u64(b + at, cases[c].value);
        if (cases[c].bytes == 2) pol_put_u16(b + at, (uint16_t)cases[c].value);
        fix_crc(b, n);
        expect_refused(b, n, CRL_ECORRUPT, cases[c].needle);
    }
    /* A section length past the end, a section count that cannot fit. */
    memcpy(b, good, n);
    pol_put_u64(b + POL_HEADER_SIZE + 8, (uint64_t)1 << 62);
    fix_crc(b, n);
    expect_refused(b, n, CRL_ECORRUPT, "past the end");
    memcpy(b, good, n);
    pol_put_u32(b + 24, 0xFFFFFFFFu);
    fix_crc(b, n);
    expect_refused(b, n, CRL_ECORRUPT, "cannot fit");
    /* A NaN weight. */
    memcpy(b, good, n);
    pol_put_u32(b + section_at(b, n, "NET ", 0) + 64, 0x7FC00000u);
    fix_crc(b, n);
    expect_refused(b, n, CRL_ECORRUPT, "NaN");
    /* An unknown critical section needs a newer crl; an unknown ancillary one
     * is skipped. */
    memcpy(b, good, n);
    size_t info = section_at(b, n, "info", 0);
    ck_assert(info > 0);
    memcpy(b + info - 16, "CSPA", 4);
    fix_crc(b, n);
    expect_refused(b, n, CRL_EVERSION, "'CSPA'");
    memcpy(b + info - 16, "zzzz", 4);
    fix_crc(b, n);
    ck_assert(crl_policy_load_mem(b, n, &p, msg, sizeof msg) == CRL_OK);
    crl_policy_free(p);
    free(b);
    free(good);
}
END_TEST

/* CSP and L2M sections with absurd or inconsistent values, with a valid
 * checksum: refused with a message, before anything is allocated from them
 * (expect_refused bounds the largest allocation by the file size). */
START_TEST(test_malformed_csp_l2m_refused) {
    const uint32_t nan_bits = 0x7FC00000u;
    struct {
        int run;
        const char *tag;
        int idx;
        size_t field;
        int bytes;
        uint64_t value;
        const char *needle;
    } cases[] = {
        {R_CSP, "META", 0, 8, 4, 65, "anchor networks"},         /* 65 anchors */
        {R_CSP, "CSPT", 0, 0, 4, 0xFFFFFFFFu, "anchors x"},      /* anchor count */
        {R_CSP, "CSPT", 0, 0, 4, 64, "anchors x"},               /* not META's */
        {R_CSP, "CSPT", 0, 4, 4, 0x7FFFFFFFu, "alpha rows"},     /* rows */
        {R_CSP, "CSPT", 0, 8, 4, 1, "anchors x"},                /* reserved */
        {R_CSP, "CSPT", 0, 16, 4, nan_bits, "NaN"},              /* alpha */
        {R_CSP, "CSPT", 0, 16, 4, 0x40000000u, "not in [0, 1]"}, /* 2.0 */
        {R_CSP, "CSPT", 0, 16, 4, 0x3E800000u, "sums to"},       /* [0.25, 0, ..] */
        {R_CSP, "TASK", 1, 0, 4, 1, "all anchors"},              /* network 1 */
        {R_CSP, "TASK", 1, 8, 4, 0, "view"},                     /* a view */
        {R_L2M, "META", 0, 8, 4, 2, "exactly 1"},                /* two networks */
        {R_L2M, "L2MP", 0, 0, 4, 1, "network 1"},                /* not the base */
        {R_L2M, "L2MP", 0, 4, 4, 9, "modulator kind"},           /* kind */
        {R_L2M, "L2MP", 0, 8, 4, 0xFFFFFFFFu, "modulators"},     /* M */
        {R_L2M, "L2MP", 0, 8, 4, 0, "modulators"},               /* M = 0 */
        {R_L2M, "L2MP", 0, 8, 4, 4096, "pool parameters"},       /* real but absent */
        {R_L2M, "L2MP", 0, 12, 4, 0x7FFFFFFFu, "rank"},          /* LoRA rank */
        {R_L2M, "L2MP", 0, 12, 4, 4096, "pool parameters"},      /* real but absent */
        {R_L2M, "L2MP", 0, 16, 4, nan_bits, "scale"},            /* LoRA scale */
        {R_L2M, "L2MP", 0, 20, 4, 7, "routing"},                 /* routing */
        {R_L2M, "L2MP", 0, 24, 4, 3, "routing"},                 /* cosine with tasks */
        {R_L2M, "L2MP", 0, 20, 4, 2, "routing"}, /* arrow needs version 3 */
        /* R_L2M is an L2MP version 2 (H = 5): H and hold at 32 and 36 */
        {R_L2M, "L2MP", 0, 32, 4, 0, "history"},  /* H = 0 */
        {R_L2M, "L2MP", 0, 32, 4, 65, "history"}, /* H > 64 */
        {R_L2M, "L2MP", 0, 36, 4, 2, "hold"},     /* hold 2 */
        {R_L2M, "L2MP", 0, 40, 8, (uint64_t)1 << 61, "pool parameters"},
        {R_L2M, "L2MP", 0, 48, 4, nan_bits, "NaN"},                       /* a key */
        {R_L2MO, "L2MP", 0, 32, 8, (uint64_t)1 << 61, "pool parameters"}, /* v1 */
        {R_L2MO, "L2MP", 0, 40, 4, nan_bits, "NaN"},                      /* v1 */
        {R_L2M, "TASK", 0, 8, 4, 0, "view"},                 /* cosine: no task */
        {R_L2MO, "L2MP", 0, 12, 4, 2, "rank"},               /* IA3 has none */
        {R_L2MO, "L2MP", 0, 24, 4, 7, "routing"},            /* 7 tasks, 6 mods */
        {R_L2MO, "L2MP", 0, 24, 4, 0, "routing"},            /* oracle, 0 tasks */
        {R_L2MO, "TASK", 1, 8, 4, 3, "oracle routing task"}, /* slice 3 of 3 */
        {R_L2MO, "TASK", 1, 8, 4, 0xFFFFFFFFu, "oracle routing task"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n;
        unsigned char *b = read_all(g_pol[cases[c].run], &n);
        size_t at = section_at(b, n, cases[c].tag, cases[c].idx);
        ck_assert(at > 0);
        at += cases[c].field;
        if (cases[c].bytes == 4) pol_put_u32(b + at, (uint32_t)cases[c].value);
        if (cases[c].bytes == 8) pol_put_u64(b + at, cases[c].value);
        fix_crc(b, n);
        expect_refused(b, n, CRL_ECORRUPT, cases[c].needle);
        free(b);
    }
    /* The anchors share one LayerNorm: anchor 1 with another gain. */
    size_t n;
    unsigned char *b = read_all(g_pol[R_CSP], &n);
    size_t net = section_at(b, n, "NET ", 1);
    const uint32_t in = pol_get_u32(b + net), layers = pol_get_u32(b + net + 12),
                   h0 = pol_get_u32(b + net + 16);
    ck_assert_uint_eq(layers, LAYERS);
    size_t gain = net + 16 + 4 * (size_t)layers + 32 + 4 * ((size_t)in * h0 + h0);
    pol_put_u32(b + gain, pol_f32_bits(0.5f));
    fix_crc(b, n);
    expect_refused(b, n, CRL_ECORRUPT, "another LayerNorm");
    /* Without its section (renamed ancillary), a CSP or L2M file is refused. */
    free(b);
    b = read_all(g_pol[R_CSP], &n);
    memcpy(b + section_at(b, n, "CSPT", 0) - 16, "cspt", 4);
    fix_crc(b, n);
    expect_refused(b, n, CRL_ECORRUPT, "0 CSPT sections");
    free(b);
    /* The history query is in L2MP version 2 only when the run needs it
     * (H = 5 here; the oracle run, H = 1, writes version 1), and a version
     * this crl does not know (4) is refused. */
    b = read_all(g_pol[R_L2M], &n);
    ck_assert_uint_eq(pol_get_u32(b + section_at(b, n, "L2MP", 0) - 12), 2);
    ck_assert_uint_eq(pol_get_u32(b + section_at(b, n, "L2MP", 0) + 32), CRL_L2M_HISTORY);
    pol_put_u32(b + section_at(b, n, "L2MP", 0) - 12, 4); /* 3 is arrow's (known) */
    fix_crc(b, n);
    expect_refused(b, n, CRL_EVERSION, "version 4");
    free(b);
    b = read_all(g_pol[R_L2MO], &n);
    ck_assert_uint_eq(pol_get_u32(b + section_at(b, n, "L2MP", 0) - 12), 1);
    free(b);
    b = read_all(g_pol[R_L2M], &n);
    memcpy(b + section_at(b, n, "L2MP", 0) - 16, "l2mp", 4);
    fix_crc(b, n);
    expect_refused(b, n, CRL_ECORRUPT, "0 L2MP sections");
    free(b);
}
END_TEST

START_TEST(test_files_refused) {
    char path[400], msg[600];
    crl_policy *p = (crl_policy *)1;
    /* A directory. */
    ck_assert_int_eq(crl_policy_load(g_dir, &p, msg, sizeof msg), CRL_EIO);
    ck_assert_ptr_null(p);
    ck_assert_msg(strstr(msg, "is a directory") != NULL, "%s", msg);
    /* An empty file. */
    snprintf(path, sizeof path, "%s/empty.crlp", g_dir);
    fclose(fopen(path, "wb"));
    ck_assert_int_eq(crl_policy_load(path, &p, msg, sizeof msg), CRL_ECORRUPT);
    ck_assert_msg(strstr(msg, "empty file") != NULL && strstr(msg, path), "%s", msg);
    /* Missing. */
    snprintf(path, sizeof path, "%s/none.crlp", g_dir);
    ck_assert_int_eq(crl_policy_load(path, &p, msg, sizeof msg), CRL_ENOTFOUND);
    /* Truncated on disk. */
    size_t n;
    unsigned char *good = read_all(g_pol[R_PLAIN], &n);
    snprintf(path, sizeof path, "%s/short.crlp", g_dir);
    FILE *f = fopen(path, "wb");
    fwrite(good, 1, n / 2, f);
    fclose(f);
    ck_assert_int_eq(crl_policy_load(path, &p, msg, sizeof msg), CRL_ECORRUPT);
    ck_assert_msg(strstr(msg, "truncated") != NULL, "%s", msg);
    /* The trailer is the zlib / PNG CRC-32 (docs/policy-format.md). */
    ck_assert_uint_eq(crl_pf_crc32(0, "123456789", 9), 0xCBF43926u);
    ck_assert_uint_eq(crl_pf_crc32(0, good, n - 4), pol_get_u32(good + n - 4));
    /* Something else entirely. */
    ck_assert_int_eq(crl_policy_load(g_db[R_PLAIN], &p, msg, sizeof msg), CRL_ECORRUPT);
    ck_assert_msg(strstr(msg, "not a crl policy file") != NULL, "%s", msg);
    free(good);
}
END_TEST

/* A policy that loaded acts on zeros for every task. */
static void act_zeros(crl_policy *p) {
    float *obs = calloc((size_t)crl_policy_obs_dim(p), sizeof *obs);
    float *act = calloc((size_t)crl_policy_act_dim(p), sizeof *act);
    for (int t = 0; t < crl_policy_num_tasks(p); t++)
        ck_assert_int_eq(crl_policy_act(p, t, obs, act, CRL_POLICY_DETERMINISTIC, NULL),
                         CRL_OK);
    free(obs);
    free(act);
}

/* Inputs kept from fuzzing (fuzz/README.md): loaded as they are, and as
 * the fuzz target also loads them, with the file size and checksum made
 * right so that the section parsers see them. Each is refused with a
 * message or loads and acts; none crashes or leaks (ASan would tell). */
START_TEST(test_fuzz_regressions) {
    const char *src = getenv("CRL_SOURCE_DIR");
    ck_assert(src != NULL);
    char dirp[600];
    snprintf(dirp, sizeof dirp, "%s/tests/data/policy", src);
    DIR *dp = opendir(dirp);
    ck_assert_msg(dp != NULL, "%s", dirp);
    int files = 0, loaded = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (de->d_name[0] == '.' || !strstr(de->d_name, ".crlp")) continue;
        char path[900], msg[600];
        snprintf(path, sizeof path, "%s/%s", dirp, de->d_name);
        for (int fixed = 0; fixed < 2; fixed++) {
            crl_policy *p = NULL;
            int rc;
            if (!fixed) {
                rc = crl_policy_load(path, &p, msg, sizeof msg);
            } else {
                size_t n;
                unsigned char *b = read_all(path, &n);
                if (n >= POL_MIN_SIZE) {
                    pol_put_u64(b + 16, (uint64_t)n);
                    fix_crc(b, n);
                }
                rc = crl_policy_load_mem(b, n, &p, msg, sizeof msg);
                free(b);
            }
            if (rc == CRL_OK) {
                act_zeros(p);
                crl_policy_free(p);
                loaded++;
            } else {
                ck_assert_msg(msg[0] != 0 && !p, "%s: no message", path);
            }
        }
        files++;
    }
    closedir(dp);
    ck_assert_msg(files >= 10, "only %d regression inputs in %s", files, dirp);
    ck_assert(loaded > 0);
}
END_TEST

/* ---- the installed library ------------------------------------------------------------
 */

START_TEST(test_exported_symbols) {
    char lib[600], out[65536];
    snprintf(lib, sizeof lib, "%s", bin());
    char *slash = strrchr(lib, '/');
    ck_assert(slash != NULL);
    strcpy(slash + 1, "libcrl.so");
    ck_assert_int_eq(
        sh(out, sizeof out, "nm -D --defined-only %s | awk '{print $3}'", lib), 0);
    int n = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        ck_assert_msg(strncmp(line, "crl_", 4) == 0, "libcrl.so exports '%s'", line);
        n++;
    }
    ck_assert_msg(n > 100, "only %d symbols", n);
}
END_TEST

/* "task 1 window-close: mean_return 216.295 success_rate 0.000 (...)" ->
 * the text from "mean_return" to the closing parenthesis's start. */
static void summary(const char *out, const char *task_line_start, char *dst, size_t n) {
    const char *l = strstr(out, task_line_start);
    ck_assert_msg(l != NULL, "no '%s' in: %s", task_line_start, out);
    const char *a = strstr(l, "mean_return ");
    const char *e = a ? strstr(a, " (") : NULL;
    ck_assert_msg(a && e, "%s", out);
    snprintf(dst, n, "%.*s", (int)(e - a), a);
}

START_TEST(test_install_and_example) {
    const char *src = getenv("CRL_SOURCE_DIR");
    ck_assert(src != NULL);
    char build[600], prefix[400], out[65536], flags[200] = "";
    snprintf(build, sizeof build, "%s", bin());
    *strrchr(build, '/') = '\0';
    snprintf(prefix, sizeof prefix, "%s/prefix", g_dir);
#if defined(__SANITIZE_ADDRESS__)
    /* An instrumented library needs an instrumented program. */
    snprintf(flags, sizeof flags, "-fsanitize=address,undefined");
#endif
    double t0 = crl_now();
    ck_assert_msg(sh(out, sizeof out, "cmake --install %s --prefix %s", build, prefix) ==
                      0,
                  "%s", out);
    double t_install = crl_now() - t0;
    struct stat sb;
    char f[700];
    const char *must[] = {"include/crl/policy.h", "include/crl/crl.h",
                          "lib/libcrl.so",        "lib/libcrl.a",
                          "lib/pkgconfig/crl.pc", "lib/cmake/crl/crlConfig.cmake"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) {
        snprintf(f, sizeof f, "%s/%s", prefix, must[i]);
        ck_assert_msg(stat(f, &sb) == 0, "not installed: %s", f);
    }
    /* Out of tree, once with pkg-config and once with CMake's find_package. */
    t0 = crl_now();
    ck_assert_msg(sh(out, sizeof out,
                     "cd %s && PKG_CONFIG_PATH=%s/lib/pkgconfig cc -std=c11 -O2 %s "
                     "%s/examples/embed_mujoco.c $(PKG_CONFIG_PATH=%s/lib/pkgconfig "
                     "pkg-config --cflags --libs crl) -lmujoco "
                     "-Wl,-rpath,$(PKG_CONFIG_PATH=%s/lib/pkgconfig pkg-config "
                     "--variable=libdir crl) -o embed_pc",
                     g_dir, prefix, flags, src, prefix, prefix) == 0,
                  "pkg-config build: %s", out);
    double t_pc = crl_now() - t0;
    t0 = crl_now();
    ck_assert_msg(sh(out, sizeof out,
                     "cmake -S %s/examples -B %s/excm -DCMAKE_PREFIX_PATH=%s "
                     "-DCMAKE_BUILD_TYPE=Release '-DCMAKE_C_FLAGS=%s' "
                     "'-DCMAKE_EXE_LINKER_FLAGS=%s' && cmake --build %s/excm",
                     src, g_dir, prefix, flags, flags, g_dir) == 0,
                  "CMake build: %s", out);
    double t_cm = crl_now() - t0;
    fprintf(stderr,
            "test_install_and_example: install %.1f s, pkg-config build %.1f s, "
            "CMake build %.1f s\n",
            t_install, t_pc, t_cm);
    ck_assert(t_install + t_pc + t_cm < 100.0);

    char exe[2][500];
    snprintf(exe[0], sizeof exe[0], "%s/embed_pc", g_dir);
    snprintf(exe[1], sizeof exe[1], "%s/excm/embed_mujoco", g_dir);
    /* Their returns are crl eval's: a manipulation task (mocap) of the
     * packnet run, and a locomotion task with physics modifiers. */
    struct {
        int run, pos, local;
        const char *task, *line;
    } cases[] = {{R_PACKNET, 1, 1, "window-close", "task 1 window-close:"},
                 {R_PLAIN, 0, 0, "push", "task 0 push:"},
                 {R_LOCO, 1, 0, "halfcheetah-moon", "task 1 halfcheetah-moon:"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char xml[600], want[300], got[300];
        snprintf(xml, sizeof xml, "%s/%s.xml", g_dir, cases[c].task);
        ck_assert(sh(out, sizeof out, "%s export --task-xml %s -o %s", bin(),
                     cases[c].task, xml) == 0);
        ck_assert_msg(
            sh(out, sizeof out,
               "%s eval --db %s --run 1 --task %d --episodes 3 --seed 7 --deterministic",
               bin(), g_db[cases[c].run], cases[c].pos) == 0,
            "%s", out);
        summary(out, cases[c].line, want, sizeof want);
        for (int k = 0; k < 2; k++) {
            /* crl eval acts on a continual run's 3 episodes in 4 rows. */
            ck_assert_msg(sh(out, sizeof out,
                             "%s %s %s --task %d --episodes 3 --rows 4 --seed 7", exe[k],
                             g_pol[cases[c].run], xml, cases[c].local) == 0,
                          "%s", out);
            summary(out, cases[c].line, got, sizeof got);
            ck_assert_msg(!strcmp(got, want), "%s: example '%s', crl eval '%s'", exe[k],
                          got, want);
            /* The one-row loop (act_mj) and a one-row batch agree. */
            char one[300];
            ck_assert_msg(sh(out, sizeof out,
                             "%s %s %s --task %d --episodes 1 --seed 7 --one-by-one",
                             exe[k], g_pol[cases[c].run], xml, cases[c].local) == 0,
                          "%s", out);
            summary(out, cases[c].line, one, sizeof one);
            ck_assert_msg(sh(out, sizeof out, "%s %s %s --task %d --episodes 1 --seed 7",
                             exe[k], g_pol[cases[c].run], xml, cases[c].local) == 0,
                          "%s", out);
            summary(out, cases[c].line, got, sizeof got);
            ck_assert_msg(!strcmp(got, one), "%s: one by one '%s', batch of 1 '%s'",
                          exe[k], one, got);
        }
        fprintf(stderr, "test_install_and_example: %s: %s (= crl eval)\n", cases[c].task,
                want);
    }
    /* A single-env run (crl train --env), against the evaluation crl eval
     * runs for those (crl_evaluate), called here in-process. */
    reference r;
    ref_load(R_SINGLE, &r);
    crl_err err = {0};
    crl_env_spec *s = NULL;
    ck_assert(crl_env_spec_create("halfcheetah-moon", &s, &err) == CRL_OK);
    double ret = 0, sr = 0;
    ck_assert(crl_evaluate(r.sac, s, 0, 3, 1, 7, &ret, &sr, &err) == CRL_OK);
    char want[300], got[300], xml[600];
    snprintf(want, sizeof want, "mean_return %.3f success_rate %.3f", ret, sr);
    snprintf(xml, sizeof xml, "%s/halfcheetah-moon.xml", g_dir);
    ck_assert_msg(sh(out, sizeof out, "%s %s %s --episodes 3 --seed 7", exe[0],
                     g_pol[R_SINGLE], xml) == 0,
                  "%s", out);
    summary(out, "task 0 halfcheetah-moon:", got, sizeof got);
    ck_assert_msg(!strcmp(got, want), "example '%s', crl_evaluate '%s'", got, want);
    /* One episode, one row: the act_mj loop equals crl's evaluation of it. */
    ck_assert(crl_evaluate(r.sac, s, 0, 1, 1, 7, &ret, &sr, &err) == CRL_OK);
    snprintf(want, sizeof want, "mean_return %.3f success_rate %.3f", ret, sr);
    ck_assert_msg(sh(out, sizeof out, "%s %s %s --episodes 1 --seed 7 --one-by-one",
                     exe[1], g_pol[R_SINGLE], xml) == 0,
                  "%s", out);
    summary(out, "task 0 halfcheetah-moon:", got, sizeof got);
    ck_assert_msg(!strcmp(got, want), "one by one '%s', crl_evaluate '%s'", got, want);
    crl_env_spec_free(s);
    ref_free(&r);
}
END_TEST

int main(void) {
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("policy");
    tcase_add_unchecked_fixture(tc, train_runs, remove_dir);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_act_bitwise_plain);
    tcase_add_test(tc, test_act_bitwise_ftn);
    tcase_add_test(tc, test_act_bitwise_packnet);
    tcase_add_test(tc, test_act_bitwise_csp);
    tcase_add_test(tc, test_act_bitwise_csp_unfinished);
    tcase_add_test(tc, test_act_bitwise_l2m);
    tcase_add_test(tc, test_export_one_task);
    tcase_add_test(tc, test_cli_export);
    tcase_add_test(tc, test_task_xml_is_crls_model);
    tcase_add_test(tc, test_episode_in_callers_loop);
    tcase_add_test(tc, test_mj_errors);
    tcase_add_test(tc, test_act_allocates_nothing);
    tcase_add_test(tc, test_clones_on_threads);
    tcase_add_test(tc, test_malformed_refused);
    tcase_add_test(tc, test_malformed_csp_l2m_refused);
    tcase_add_test(tc, test_files_refused);
    tcase_add_test(tc, test_fuzz_regressions);
    tcase_add_test(tc, test_exported_symbols);
    tcase_add_test(tc, test_install_and_example);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
