/* Training diagnostics (docs/diagnostics.md): the runaway detector on
 * hand-made sequences, the gradient norms of crl_sac_stats against the
 * gradients themselves, no allocation for the stats, and through the crl
 * binary: diag/... rows at the interval, the --diag-every flag's bad input,
 * the evaluation lines, locomotion progress lines without a success rate and
 * crl plot --kind diagnostics. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crl/runner.h"
#include "crl/sac.h"
#include "crl/store.h"
#include "malloc_count.h"

/* ---- the runaway detector ------------------------------------------------------ */

static crl_sac_stats stats(double q_mean, double q_loss, double alpha, double logp) {
    crl_sac_stats s;
    memset(&s, 0, sizeof s);
    s.q_mean = q_mean;
    s.q_loss = q_loss;
    s.alpha = alpha;
    s.logp = logp;
    return s;
}

/* Rewards in [-1, 1], alpha 0.1, logp -2: Q_max = (1 + 0.2) / 0.01 = 120, so
 * the Q bound is 1201 and the loss bound 100 * 120^2 + 1 = 1440001. */
START_TEST(test_runaway_q) {
    crl_runaway d;
    crl_runaway_init(&d);
    for (int i = 0; i < 100; i++) crl_runaway_reward(&d, sin(i));
    crl_runaway_reward(&d, -1.0);
    char msg[256] = "";
    /* A healthy critic: Q within what the rewards allow, moderate losses. */
    for (int i = 0; i < 200; i++) {
        crl_sac_stats s = stats(-100 + i, 1 + i % 50, 0.1, -2);
        ck_assert_int_eq(crl_runaway_update(&d, &s, 0.99, msg, sizeof msg), 0);
    }
    /* Q grows 1.5x per update from 100: flagged at the first value beyond
     * 1201 (100 * 1.5^7 = 1708.6), once. */
    int fired = 0, first = -1;
    double q = 100;
    for (int i = 0; i < 40; i++, q *= 1.5) {
        crl_sac_stats s = stats(q, 10, 0.1, -2);
        if (crl_runaway_update(&d, &s, 0.99, msg, sizeof msg)) {
            fired++;
            if (first < 0) first = i;
        }
    }
    ck_assert_int_eq(fired, 1);
    ck_assert_int_eq(first, 7);
    ck_assert_msg(strstr(msg, "Q is running away") != NULL, "%s", msg);
    /* A new task may be warned about again; its first bad update is. */
    crl_runaway_task_start(&d);
    crl_sac_stats bad = stats(-5000, 10, 0.1, -2);
    ck_assert_int_eq(crl_runaway_update(&d, &bad, 0.99, msg, sizeof msg), 1);
    ck_assert_int_eq(crl_runaway_update(&d, &bad, 0.99, msg, sizeof msg), 0);
}
END_TEST

START_TEST(test_runaway_loss_and_nan) {
    crl_runaway d;
    crl_runaway_init(&d);
    crl_runaway_reward(&d, 1.0);
    char msg[256] = "";
    crl_sac_stats ok = stats(50, 1.4e6, 0.1, -2); /* just under 1440001 */
    ck_assert_int_eq(crl_runaway_update(&d, &ok, 0.99, msg, sizeof msg), 0);
    crl_sac_stats boom = stats(50, 1.5e6, 0.1, -2);
    ck_assert_int_eq(crl_runaway_update(&d, &boom, 0.99, msg, sizeof msg), 1);
    ck_assert_msg(strstr(msg, "critic loss is exploding") != NULL, "%s", msg);
    /* A NaN counts too (when nothing was said before in the task). */
    crl_runaway_task_start(&d);
    crl_sac_stats nan_q = stats(NAN, 1, 0.1, -2);
    ck_assert_int_eq(crl_runaway_update(&d, &nan_q, 0.99, msg, sizeof msg), 1);
}
END_TEST

/* Rule 2: an explosion that the bound misses, because the entropy bonus
 * (a runaway alpha) explodes with it, is caught by the growth of the log
 * critic loss; one bad batch is not, nor a task's first updates, nor a
 * loss within (R / (1 - gamma))^2 + 1 = 10001 (R = 1, gamma 0.99). */
START_TEST(test_runaway_growth) {
    crl_runaway d;
    crl_runaway_init(&d);
    crl_runaway_reward(&d, 1.0);
    char msg[320] = "";
    /* 300 healthy updates, loss 5..15, then a single batch of loss 1e7. */
    for (int i = 0; i < 300; i++) {
        crl_sac_stats s = stats(20, 5 + i % 11, 0.1, -2);
        ck_assert_int_eq(crl_runaway_update(&d, &s, 0.99, msg, sizeof msg), 0);
    }
    crl_sac_stats spike = stats(20, 1e7, 0.1, -2);
    /* The bound of rule 1 with an alpha of 1e4: not flagged by it. */
    spike.alpha = 1e4;
    ck_assert_int_eq(crl_runaway_update(&d, &spike, 0.99, msg, sizeof msg), 0);
    for (int i = 0; i < 50; i++) {
        crl_sac_stats s = stats(20, 5 + i % 11, 0.1, -2);
        ck_assert_int_eq(crl_runaway_update(&d, &s, 0.99, msg, sizeof msg), 0);
    }
    /* Now alpha and the loss grow 3x per update (the bonus with them, so
     * that rule 1's bound always stays above the loss): flagged once, by
     * rule 2, within a few updates of the loss passing 10001. */
    double loss = 10, alpha = 0.1;
    int fired = 0, at = -1;
    for (int i = 0; i < 40; i++, loss *= 3, alpha *= 3) {
        crl_sac_stats s = stats(20, loss, alpha, -2);
        if (crl_runaway_update(&d, &s, 0.99, msg, sizeof msg)) {
            fired++;
            at = i;
        }
    }
    ck_assert_int_eq(fired, 1);
    ck_assert_msg(at >= 7 && at <= 13, "flagged at growth step %d", at); /* 3^7 = 2187 */
    ck_assert_msg(strstr(msg, "geometric") != NULL, "%s", msg);
    /* The same growth in a task's first CRL_RUNAWAY_WARMUP updates, or
     * staying within the floor, is not flagged by rule 2. */
    crl_runaway_task_start(&d);
    loss = 1e-3;
    for (int i = 0; i < 40; i++, loss *= 1.4) {
        crl_sac_stats s = stats(20, fmin(loss, 9000), 1e6, -2);
        ck_assert_msg(crl_runaway_update(&d, &s, 0.99, msg, sizeof msg) == 0,
                      "flagged at %d: %s", i, msg);
    }
}
END_TEST

/* The bound follows the reward scale, the entropy bonus and gamma. */
START_TEST(test_runaway_scale) {
    char msg[256];
    crl_sac_stats s = stats(5000, 10, 0.1, -2);
    crl_runaway d;
    crl_runaway_init(&d);
    crl_runaway_reward(&d, 1.0);
    ck_assert_int_eq(crl_runaway_update(&d, &s, 0.99, msg, sizeof msg), 1);
    /* Rewards up to 10: Q_max = 1002, bound 10021: 5000 is fine. */
    crl_runaway_init(&d);
    crl_runaway_reward(&d, -10.0);
    ck_assert_int_eq(crl_runaway_update(&d, &s, 0.99, msg, sizeof msg), 0);
    /* A large entropy bonus (alpha 5, logp -10) raises the bound too. */
    crl_runaway_init(&d);
    crl_runaway_reward(&d, 1.0);
    crl_sac_stats big_bonus = stats(10, 1, 5, -10);
    ck_assert_int_eq(crl_runaway_update(&d, &big_bonus, 0.99, msg, sizeof msg), 0);
    ck_assert_int_eq(crl_runaway_update(&d, &s, 0.99, msg, sizeof msg), 0);
    /* gamma 0.9: Q_max = 10, bound 101. */
    crl_runaway_init(&d);
    crl_runaway_reward(&d, 1.0);
    crl_sac_stats q150 = stats(150, 1, 0, 0);
    ck_assert_int_eq(crl_runaway_update(&d, &q150, 0.9, msg, sizeof msg), 1);
    /* gamma 1: no bound, never flagged. */
    crl_runaway_init(&d);
    crl_sac_stats huge = stats(1e30, 1e30, 0, 0);
    ck_assert_int_eq(crl_runaway_update(&d, &huge, 1.0, msg, sizeof msg), 0);
    /* Nothing seen yet: the "+ 1" floor keeps a fresh critic's small Q quiet. */
    crl_runaway_init(&d);
    crl_sac_stats fresh = stats(0.3, 0.5, 0, 0);
    ck_assert_int_eq(crl_runaway_update(&d, &fresh, 0.99, msg, sizeof msg), 0);
}
END_TEST

/* ---- gradient norms ---------------------------------------------------------- */

enum { O = 5, A = 2, B = 16 };

static crl_sac *small_sac(void) {
    crl_sac_config c;
    crl_sac_config_default(&c, O, A, 1);
    c.hidden = 24;
    c.layers = 2;
    c.batch = B;
    crl_sac *s = NULL;
    crl_err err = {0};
    ck_assert_msg(crl_sac_create(&c, 5, &s, &err) == CRL_OK, "%s", err.msg);
    return s;
}

static void fill_batch(crl_batch *b, uint64_t seed) {
    crl_rng r;
    crl_rng_seed(&r, seed);
    for (int i = 0; i < B * O; i++) b->obs[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < B * O; i++) b->obs2[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < B * A; i++) b->act[i] = (float)crl_rng_range(&r, -0.9, 0.9);
    for (int i = 0; i < B; i++) {
        b->rew[i] = (float)crl_rng_normal(&r);
        b->done[i] = 0;
        b->task[i] = 0;
    }
    b->B = B;
}

static double norm_of(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

START_TEST(test_grad_norms) {
    crl_sac *s = small_sac();
    crl_batch b;
    crl_err err = {0};
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, &err), 0);
    fill_batch(&b, 3);
    float eps[2 * B * A];
    crl_rng r;
    crl_rng_seed(&r, 8);
    for (int i = 0; i < 2 * B * A; i++) eps[i] = (float)crl_rng_normal(&r);
    crl_sac_stats st;
    ck_assert_int_eq(crl_sac_compute_grads(s, &b, eps, &st), CRL_OK);
    float *ga, *gc, *gl;
    crl_sac_grads(s, &ga, &gc, &gl);
    const double na = norm_of(ga, crl_sac_actor_size(s));
    const double nc = norm_of(gc, 2 * crl_sac_critic(s)->n_params);
    ck_assert_msg(na > 0 && nc > 0, "zero gradients");
    ck_assert_msg(fabs(st.grad_norm_actor - na) <= 1e-5 * na, "actor %g vs %g",
                  st.grad_norm_actor, na);
    ck_assert_msg(fabs(st.grad_norm_critic - nc) <= 1e-5 * nc, "critic %g vs %g",
                  st.grad_norm_critic, nc);
    /* Behaviour cloning: the actor's norm, no critic. */
    ck_assert_int_eq(crl_sac_bc_compute_grads(s, &b, CRL_BC_NLL, &st), CRL_OK);
    crl_sac_grads(s, &ga, &gc, &gl);
    const double nb = norm_of(ga, crl_sac_actor_size(s));
    ck_assert_msg(fabs(st.grad_norm_actor - nb) <= 1e-5 * nb, "bc actor %g vs %g",
                  st.grad_norm_actor, nb);
    ck_assert(isnan(st.grad_norm_critic));
    /* crl_sac_update with stats: finite norms. */
    ck_assert_int_eq(crl_sac_update(s, &b, &st, &err), CRL_OK);
    ck_assert(isfinite(st.grad_norm_actor) && st.grad_norm_actor > 0);
    ck_assert(isfinite(st.grad_norm_critic) && st.grad_norm_critic > 0);
    crl_batch_free(&b);
    crl_sac_free(s);
}
END_TEST

/* Updates with stats (norms included) allocate no more than updates
 * without: the diagnostics add nothing to the update's allocations (which
 * are 0 where the BLAS allocates nothing, test_sac's no-malloc test). */
START_TEST(test_stats_no_malloc) {
#if HAVE_MALLOC_COUNT
    crl_sac *s = small_sac();
    crl_batch b;
    crl_err err = {0};
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, &err), 0);
    fill_batch(&b, 4);
    crl_sac_stats st;
    int bad = 0;
    for (int i = 0; i < 20; i++) bad += crl_sac_update(s, &b, &st, &err) != CRL_OK;
    long t0 = alloc_calls();
    for (int i = 0; i < 100; i++) bad += crl_sac_update(s, &b, NULL, &err) != CRL_OK;
    long without = alloc_calls() - t0;
    t0 = alloc_calls();
    for (int i = 0; i < 100; i++) bad += crl_sac_update(s, &b, &st, &err) != CRL_OK;
    long with = alloc_calls() - t0;
    t0 = alloc_calls();
    for (int i = 0; i < 100; i++)
        bad += crl_sac_bc_update(s, &b, CRL_BC_NLL, &st, &err) != CRL_OK;
    long bc_with = alloc_calls() - t0;
    t0 = alloc_calls();
    for (int i = 0; i < 100; i++)
        bad += crl_sac_bc_update(s, &b, CRL_BC_NLL, NULL, &err) != CRL_OK;
    long bc_without = alloc_calls() - t0;
    ck_assert_int_eq(bad, 0);
    ck_assert_msg(with == without, "%ld allocations with stats, %ld without", with,
                  without);
    ck_assert_msg(bc_with == bc_without, "bc: %ld allocations with stats, %ld without",
                  bc_with, bc_without);
    crl_batch_free(&b);
    crl_sac_free(s);
#else
    printf("test_stats_no_malloc: skipped (no malloc counting here)\n");
#endif
}
END_TEST

/* ---- through the crl binary ---------------------------------------------------- */

static char dir[256], out_path[320], err_path[320], db[320];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/crl_test_diag_XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    snprintf(err_path, sizeof err_path, "%s/err", dir);
    snprintf(db, sizeof db, "%s/d.db", dir);
}

static void teardown(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static const char *bin(void) {
    const char *b = getenv("CRL_BIN");
    return b ? b : "./crl";
}

static int run_argv(char *const argv[]) {
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (!freopen(out_path, "w", stdout) || !freopen(err_path, "w", stderr))
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    ck_assert(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define RUN(...) run_argv((char *const[]){(char *)bin(), __VA_ARGS__, NULL})

static char *slurp(const char *path) {
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static int count_lines(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void expect_one_line_error(int code, int want, const char *needle) {
    char *e = slurp(err_path);
    ck_assert_msg(code == want, "exit %d, want %d; stderr: %s", code, want, e);
    ck_assert_msg(count_lines(e, "\n") == 1, "stderr is not one line: %s", e);
    ck_assert_msg(strstr(e, needle) != NULL, "stderr lacks '%s': %s", needle, e);
}

typedef struct {
    int n;
    int64_t steps[64];
} key_rows;

static int collect(const crl_metric_row *row, void *ctx) {
    key_rows *k = ctx;
    if (k->n < 64) k->steps[k->n] = row->step;
    k->n++;
    return 0;
}

static key_rows rows_of(const char *key) {
    crl_store *st = NULL;
    crl_err err = {0};
    key_rows k = {0};
    ck_assert_msg(crl_store_open(db, 0, &st, &err) == CRL_OK, "%s", err.msg);
    const char *keys[] = {key};
    ck_assert_msg(crl_store_metrics(st, 1, keys, 1, collect, &k, &err) == CRL_OK, "%s",
                  err.msg);
    crl_store_close(st);
    return k;
}

static int n_diag_keys(void) {
    static const char *const keys[] = {
        "diag/critic_loss",      "diag/actor_loss",   "diag/alpha",
        "diag/q_mean",           "diag/entropy",      "diag/grad_norm_actor",
        "diag/grad_norm_critic", "diag/train_return", "diag/train_success",
        "diag/env_steps_per_s",  "diag/updates_per_s"};
    int n = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) n += rows_of(keys[i]).n > 0;
    return n;
}

#define TINY                                                                             \
    "--hidden", "16", "--layers", "1", "--batch", "16", "--threads", "1",                \
        "--start-steps", "500", "--update-after", "1000"

/* pendulum (200-step episodes), 3,000 steps, updates in rounds of 50 from
 * step 1,000: 2,050 updates. --diag-every 500: rows after updates 500,
 * 1000, 1500, 2000 (steps 1450, 1950, 2450, 2950), then the run's last 50
 * at step 3000. */
START_TEST(test_rows_at_interval) {
    int code =
        RUN("train", "--db", db, "--env", "pendulum", "--steps", "3000", "--eval-every",
            "1000", "--eval-episodes", "2", "--diag-every", "500", TINY);
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(err_path));
    static const char *const keys[] = {
        "diag/critic_loss",      "diag/actor_loss",   "diag/alpha",
        "diag/q_mean",           "diag/entropy",      "diag/grad_norm_actor",
        "diag/grad_norm_critic", "diag/train_return", "diag/train_success",
        "diag/env_steps_per_s",  "diag/updates_per_s"};
    const int64_t want[] = {1450, 1950, 2450, 2950, 3000};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        key_rows k = rows_of(keys[i]);
        ck_assert_msg(k.n == 5, "%s: %d rows, want 5", keys[i], k.n);
        for (int j = 0; j < 5; j++)
            ck_assert_msg(k.steps[j] == want[j], "%s row %d at step %lld, want %lld",
                          keys[i], j, (long long)k.steps[j], (long long)want[j]);
    }
    /* One evaluation line per evaluation, the first without a change. */
    char *e = slurp(err_path);
    ck_assert_msg(count_lines(e, "eval task 0 pendulum (1/1) | step ") == 3, "%s", e);
    ck_assert_msg(strstr(e, "eval task 0 pendulum (1/1) | step 1000 | success ") !=
                          NULL &&
                      strstr(e, "(first evaluation)") != NULL,
                  "%s", e);
    ck_assert_msg(count_lines(e, "(first evaluation)") == 1, "%s", e);
    ck_assert_msg(strstr(e, "step 3000 | success ") != NULL, "%s", e);
    /* A healthy pendulum run is not flagged. */
    ck_assert_msg(strstr(e, "warning") == NULL, "%s", e);
    ck_assert_int_eq(rows_of("diag/runaway").n, 0);
    /* crl plot --kind diagnostics draws them. */
    char png[340];
    snprintf(png, sizeof png, "%s/diag.png", dir);
    code = RUN("plot", "--db", db, "--run", "1", "--kind", "diagnostics", "-o", png);
    ck_assert_msg(code == 0, "plot exit %d: %s", code, slurp(err_path));
    FILE *f = fopen(png, "rb");
    ck_assert(f != NULL);
    unsigned char head[8] = {0};
    ck_assert_int_eq(fread(head, 1, 8, f), 8);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    ck_assert(memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0);
    ck_assert_msg(size > 20000, "a %ld-byte PNG", size);
}
END_TEST

/* An absurd learning rate (0.3 on every optimiser: alpha runs away, and
 * the critic loss with it) is flagged with one warning line, given before
 * the run fails on NaN, and a diag/runaway row. */
START_TEST(test_runaway_warning_line) {
    int code = RUN("train", "--db", db, "--env", "pendulum", "--steps", "3000",
                   "--eval-every", "3000", "--eval-episodes", "0", "--lr", "0.3", TINY);
    char *e = slurp(err_path);
    ck_assert_msg(code == 1, "exit %d: %s", code, e);
    ck_assert_msg(count_lines(e, "warning:") == 1, "%s", e);
    const char *w = strstr(e, "crl train: warning: task 0 pendulum (1/1), step ");
    const char *f = strstr(e, "non-finite loss");
    ck_assert_msg(w && f && w < f, "no warning before the failure: %s", e);
    ck_assert_msg(strstr(w, "critic loss is exploding") != NULL, "%s", e);
    ck_assert_int_eq(rows_of("diag/runaway").n, 1);
}
END_TEST

/* --diag-every 0: no rows, and the plot refuses the run in one line,
 * writing nothing. */
START_TEST(test_off_and_plot_refusal) {
    int code =
        RUN("train", "--db", db, "--env", "pendulum", "--steps", "1400", "--eval-every",
            "1400", "--eval-episodes", "0", "--diag-every", "0", TINY);
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(err_path));
    ck_assert_int_eq(n_diag_keys(), 0);
    char png[340];
    snprintf(png, sizeof png, "%s/none.png", dir);
    expect_one_line_error(
        RUN("plot", "--db", db, "--run", "1", "--kind", "diagnostics", "-o", png), 1,
        "has no training diagnostics");
    ck_assert(access(png, F_OK) != 0);
}
END_TEST

/* Bad values of the flag: one line, exit 2, no store created. */
START_TEST(test_flag_bad_input) {
    static const char *const bad[] = {"-1", "abc", "1.5", "", "1e13"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_one_line_error(RUN("train", "--db", db, "--env", "pendulum", "--steps",
                                  "100", "--diag-every", (char *)bad[i]),
                              2, "--diag-every");
        ck_assert_msg(access(db, F_OK) != 0, "'%s' created the store", bad[i]);
    }
    expect_one_line_error(RUN("train", "--db", db, "--env", "pendulum", "--diag-every"),
                          2, "--diag-every");
    ck_assert(access(db, F_OK) != 0);
}
END_TEST

/* A continual locomotion run (halfcheetah-forgetting: 8 tasks): rows in
 * every task, a last one at each task's end, no training success
 * (locomotion has none), eval lines for the tasks trained so far, and
 * progress lines without a success rate. Per task: update rounds of 50 at
 * task steps 900, 950, ..., 1100 (250 updates); --diag-every 100: rows
 * after updates 100 and 200 (task steps 950, 1050) and the last 50 at the
 * task's end (1100). */
START_TEST(test_continual_locomotion) {
    int code = RUN("train", "--db", db, "--scenario", "halfcheetah-forgetting",
                   "--method", "ft1", "--steps-per-task", "1100", "--eval-every", "4400",
                   "--eval-episodes", "0", "--diag-every", "100", "--hidden", "16",
                   "--layers", "1", "--batch", "16", "--threads", "1", "--start-steps",
                   "200", "--update-after", "900", "--update-every", "50");
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(err_path));
    char *e = slurp(err_path);
    key_rows k = rows_of("diag/critic_loss");
    ck_assert_msg(k.n == 24, "%d critic-loss rows, want 3 in each of 8 tasks", k.n);
    for (int i = 0; i < k.n; i++) {
        const int64_t want = 1100 * (i / 3) + (int64_t[]){950, 1050, 1100}[i % 3];
        ck_assert_msg(k.steps[i] == want, "row %d at step %lld, want %lld", i,
                      (long long)k.steps[i], (long long)want);
    }
    ck_assert_int_eq(rows_of("diag/updates_per_s").n, 24);
    ck_assert_int_eq(rows_of("diag/train_success").n, 0);
    ck_assert_msg(rows_of("diag/train_return").n > 0, "no training returns");
    /* Evaluations at steps 4400 (tasks 1-4 trained so far) and 8800 (all 8),
     * with returns. */
    ck_assert_msg(count_lines(e, "eval task ") == 12, "%s", e);
    ck_assert_msg(count_lines(e, "(first evaluation)") == 8, "%s", e);
    ck_assert_msg(
        strstr(e, "eval task 3 halfcheetah-rainfall (4/8) | step 4400 | return ") != NULL,
        "%s", e);
    ck_assert_msg(strstr(e, "(5/8) | step") == NULL ||
                      strstr(strstr(e, "(5/8) | step"), "step 8800") != NULL,
                  "%s", e);
    /* Progress lines show the recent return, never a success rate. */
    ck_assert_msg(strstr(e, "| return -") != NULL || strstr(e, "| return ") != NULL, "%s",
                  e);
    ck_assert_msg(strstr(e, "success") == NULL, "a success rate on locomotion: %s", e);
}
END_TEST

/* An offline (behaviour-cloning) run: every 100 updates a row of the
 * quantities it has (the actor's), none of the critic's. */
START_TEST(test_offline_rows) {
    char ds[340];
    snprintf(ds, sizeof ds, "%s/ds.db", dir);
    int code =
        RUN("dataset", "--scenario", "t1", "--episodes", "2", "--seed", "1", "-o", ds);
    ck_assert_msg(code == 0, "dataset exit %d: %s", code, slurp(err_path));
    code = RUN("train", "--db", db, "--offline", ds, "--scenario", "t1", "--method",
               "ft1", "--updates-per-task", "300", "--eval-every", "300",
               "--eval-episodes", "0", "--hidden", "16", "--layers", "1", "--batch", "16",
               "--threads", "1", "--diag-every", "100");
    ck_assert_msg(code == 0, "train exit %d: %s", code, slurp(err_path));
    static const char *const have[] = {"diag/actor_loss", "diag/entropy",
                                       "diag/grad_norm_actor", "diag/updates_per_s"};
    for (size_t i = 0; i < sizeof have / sizeof have[0]; i++) {
        key_rows k = rows_of(have[i]);
        ck_assert_msg(k.n == 9, "%s: %d rows, want 9", have[i], k.n);
        for (int j = 0; j < 9; j++) ck_assert_int_eq(k.steps[j], 100 * (j + 1));
    }
    static const char *const none[] = {"diag/critic_loss", "diag/q_mean", "diag/alpha",
                                       "diag/grad_norm_critic", "diag/env_steps_per_s"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        ck_assert_msg(rows_of(none[i]).n == 0, "%s in an offline run", none[i]);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("diag");
    TCase *tc = tcase_create("detector");
    tcase_add_test(tc, test_runaway_q);
    tcase_add_test(tc, test_runaway_loss_and_nan);
    tcase_add_test(tc, test_runaway_growth);
    tcase_add_test(tc, test_runaway_scale);
    tcase_add_test(tc, test_grad_norms);
    tcase_add_test(tc, test_stats_no_malloc);
    suite_add_tcase(s, tc);
    TCase *cli = tcase_create("cli");
    tcase_add_checked_fixture(cli, setup, teardown);
    tcase_set_timeout(cli, 300);
    tcase_add_test(cli, test_rows_at_interval);
    tcase_add_test(cli, test_off_and_plot_refusal);
    tcase_add_test(cli, test_runaway_warning_line);
    tcase_add_test(cli, test_flag_bad_input);
    tcase_add_test(cli, test_continual_locomotion);
    tcase_add_test(cli, test_offline_rows);
    suite_add_tcase(s, cli);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
