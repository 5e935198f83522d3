/* CSP's decision as published (issue 21, docs/csp.md): success decides on
 * manipulation tasks with returns breaking ties, the critic's target rows
 * use each transition's own alpha, the shortlist's Q is a mean over replay
 * batches, and the finalists' rollouts come from fixed seeds. Every test
 * checks against numbers computed independently of the code under test. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/actor.h"
#include "crl/methods.h"
#include "crl/nn.h"
#include "crl/replay.h"
#include "crl/sac.h"
#include "crl/subspace.h"

enum { O = 3, A = 2, K = 3, NT = 3, B = 8, NR = 64 };

static crl_sac *tiny_sac(uint64_t seed) {
    crl_sac_config c;
    crl_sac_config_default(&c, O, A, NT);
    c.hidden = 8;
    c.layers = 2;
    c.batch = B;
    c.csp_anchors = K;
    crl_sac *s = NULL;
    crl_err err = {0};
    ck_assert_msg(crl_sac_create(&c, seed, &s, &err) == CRL_OK, "%s", err.msg);
    return s;
}

static void random_mix(crl_rng *r, int n, float *mix) {
    memset(mix, 0, sizeof(float) * K);
    crl_dirichlet_flat(r, n, mix, NULL);
}

/* NR random transitions of task `task`, collected at random alphas over n
 * anchors. */
static void fill_replay(crl_replay *rb, int task, int n, uint64_t seed) {
    ck_assert_int_eq(crl_replay_init(rb, O, A, NR, NULL), CRL_OK);
    ck_assert_int_eq(crl_replay_init_mix(rb, K, NULL), CRL_OK);
    crl_rng r;
    crl_rng_seed(&r, seed);
    for (int i = 0; i < NR; i++) {
        float o[O], o2[O], a[A], mix[K];
        for (int j = 0; j < O; j++) o[j] = (float)crl_rng_normal(&r);
        for (int j = 0; j < O; j++) o2[j] = (float)crl_rng_normal(&r);
        for (int j = 0; j < A; j++) a[j] = (float)crl_rng_range(&r, -0.9, 0.9);
        random_mix(&r, n, mix);
        crl_replay_add_mix(rb, o, a, (float)crl_rng_normal(&r), o2, i % 7 == 0, task,
                           mix);
    }
}

static void alloc_batch(crl_batch *b) {
    ck_assert_int_eq(crl_batch_alloc(b, B, O, A, NULL), CRL_OK);
    ck_assert_int_eq(crl_batch_alloc_mix(b, K, NULL), CRL_OK);
}

/* Grow the learner to n anchors (the new ones moved off the mean, so that
 * alphas differ). */
static void grow(crl_sac *s, int n, uint64_t seed) {
    crl_subspace *sub = crl_sac_subspace(s);
    float *p = crl_sac_actor_params(s);
    crl_rng r;
    crl_rng_seed(&r, seed);
    while (sub->n_anchors < n) {
        crl_subspace_freeze_all(sub);
        ck_assert_int_eq(crl_subspace_add_anchor(sub, p, NULL), 0);
        size_t off = crl_subspace_anchor_offset(sub, sub->n_anchors - 1);
        for (size_t i = 0; i < sub->anchor_size; i++)
            p[off + i] += 0.3f * (float)crl_rng_normal(&r);
    }
    crl_sac_subspace_changed(s);
}

/* ---- scripted rollouts ------------------------------------------------------ */

#define MAX_CALLS 64

typedef struct {
    int R;                   /* rollouts per finalist */
    double ret_new, ret_old; /* returns of the new / old finalist's rollouts */
    int succ_new, succ_old;  /* success: 0 none, 1 all, 2 odd rollouts only */
    int calls;
    uint64_t seeds[MAX_CALLS]; /* the env seed of every call */
    int noisy;                 /* returns depend on the seed and alpha instead */
    float fin[2][K];           /* the finalists, copied out of the decision */
} script;

static int succ_of(int kind, int r) {
    return kind == 1 || (kind == 2 && r % 2 == 1);
}

/* The decision rolls out the new finalist R times, then the old one R
 * times (and a check's rollouts after). */
static double scripted(void *ctx, const float *mix, uint64_t seed, int max_steps,
                       int64_t *steps, int *success) {
    script *sc = ctx;
    int c = sc->calls++;
    ck_assert_int_lt(c, MAX_CALLS);
    sc->seeds[c] = seed;
    *steps += max_steps;
    if (sc->noisy) {
        /* A different episode for every seed: return and success follow it. */
        double u = (double)(seed % 1000) / 1000.0;
        *success = (seed >> 7) & 1;
        return 100.0 * u + 30.0 * mix[K - 1];
    }
    int is_new = c < sc->R;
    int r = is_new ? c : c - sc->R;
    *success = succ_of(is_new ? sc->succ_new : sc->succ_old, r);
    return is_new ? sc->ret_new : sc->ret_old;
}

/* Task 0 (nothing to decide), then task 1 with a new anchor, decided with
 * the scripted rollouts; `success`: the task reports success. */
static crl_csp_decision decide_task1(script *sc, int success, float *alpha1,
                                     int *n_after) {
    crl_sac *s = tiny_sac(3);
    crl_csp_config cc;
    crl_csp_config_default(&cc);
    cc.n_scored = 16;
    cc.shortlist = 4;
    cc.q_batches = 3;
    cc.rollouts = sc->R;
    crl_csp m;
    crl_err err = {0};
    ck_assert_int_eq(crl_csp_init(&m, &cc, K, NT, &err), CRL_OK);
    crl_replay rb;
    crl_batch b;
    alloc_batch(&b);
    fill_replay(&rb, 1, 2, 5);
    crl_csp_decision d;
    ck_assert_int_eq(crl_csp_task_start(&m, s, 0, 11, &err), CRL_OK);
    ck_assert_int_eq(
        crl_csp_task_end(&m, s, 0, &rb, &b, 7, success, scripted, sc, &d, &err), CRL_OK);
    ck_assert_int_eq(sc->calls, 0); /* task 0: nothing rolled out */
    ck_assert_int_eq(crl_csp_task_start(&m, s, 1, 12, &err), CRL_OK);
    ck_assert_int_eq(
        crl_csp_task_end(&m, s, 1, &rb, &b, 8, success, scripted, sc, &d, &err), CRL_OK);
    ck_assert_int_eq(sc->calls, 2 * sc->R);
    ck_assert_int_eq(d.rollouts, sc->R);
    memcpy(alpha1, m.table + K, sizeof(float) * K);
    *n_after = crl_sac_subspace(s)->n_anchors;
    /* The stored alpha is the finalist of the side that won. */
    ck_assert(!memcmp(alpha1, d.kept ? d.alpha_new : d.alpha_old, sizeof(float) * K));
    ck_assert(alpha1[K - 1] == 0.0f); /* anchor 2 never exists on task 1 */
    crl_replay_free(&rb);
    crl_batch_free(&b);
    crl_csp_free(&m);
    crl_sac_free(s);
    return d;
}

/* The new finalist has the better returns (100 against 60, beyond the
 * 10% margin) but never succeeds; the old one succeeds on half its
 * episodes. On a manipulation task success decides: the anchor is pruned.
 * On a task without success (locomotion) the same rollouts keep it. When
 * both succeed equally, returns break the tie. */
START_TEST(test_success_decides_manipulation) {
    float alpha[K];
    int n;
    script sc = {.R = 4, .ret_new = 100, .ret_old = 60, .succ_new = 0, .succ_old = 2};
    crl_csp_decision d = decide_task1(&sc, 1, alpha, &n);
    ck_assert_int_eq(d.criterion, CRL_CSP_BY_SUCCESS);
    ck_assert(d.new_success == 0.0 && d.old_success == 0.5);
    ck_assert(d.best_new == 100.0 && d.best_old == 60.0);
    ck_assert_int_eq(d.kept, 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(d.n_anchors, 1);

    script loco = sc;
    loco.calls = 0;
    d = decide_task1(&loco, 0, alpha, &n);
    ck_assert_int_eq(d.criterion, CRL_CSP_BY_RETURN);
    ck_assert_int_eq(d.kept, 1);
    ck_assert_int_eq(n, 2);

    /* Equal success (all episodes): the returns decide. */
    script tie = {.R = 4, .ret_new = 100, .ret_old = 60, .succ_new = 1, .succ_old = 1};
    d = decide_task1(&tie, 1, alpha, &n);
    ck_assert_int_eq(d.criterion, CRL_CSP_BY_RETURN);
    ck_assert_int_eq(d.kept, 1);
    /* Within the margin on returns: 65 <= 60 + 0.1 * 60. */
    script close = {.R = 4, .ret_new = 65, .ret_old = 60, .succ_new = 1, .succ_old = 1};
    d = decide_task1(&close, 1, alpha, &n);
    ck_assert_int_eq(d.kept, 0);
    /* The margin on success: 0.5 against 0.5 ties; 1.0 beats 0.5. */
    script more = {.R = 4, .ret_new = 10, .ret_old = 60, .succ_new = 1, .succ_old = 2};
    d = decide_task1(&more, 1, alpha, &n);
    ck_assert_int_eq(d.criterion, CRL_CSP_BY_SUCCESS);
    ck_assert_int_eq(d.kept, 1);
    /* The rule itself, by hand. */
    int by;
    ck_assert_int_eq(crl_csp_keep(CRL_CSP_BY_SUCCESS, 0.3, 0.2, 1, 5, 0.1, &by), 1);
    ck_assert_int_eq(by, CRL_CSP_BY_SUCCESS);
    ck_assert_int_eq(crl_csp_keep(CRL_CSP_BY_SUCCESS, 0.21, 0.2, 9, 5, 0.1, &by), 0);
    ck_assert_int_eq(crl_csp_keep(CRL_CSP_BY_RETURN, 0.0, 1.0, 9, 5, 0.1, &by), 1);
    ck_assert_int_eq(by, CRL_CSP_BY_RETURN);
    /* Negative returns: -95 against -100 needs a margin below 5%. */
    ck_assert_int_eq(crl_csp_keep(CRL_CSP_BY_RETURN, 0, 0, -95, -100, 0.1, &by), 0);
    ck_assert_int_eq(crl_csp_keep(CRL_CSP_BY_RETURN, 0, 0, -95, -100, 0.04, &by), 1);
}
END_TEST

/* ---- the target uses the row's own alpha ----------------------------------- */

/* q_loss of the update recomputed from public pieces: y_i = r_i + gamma
 * (1 - d_i) (min_j Qt_j(o2_i, a2_i, mix_i) - alpha_task logp2_i) with a2_i
 * sampled from the actor at the ROW's alpha mix_i (the batch's column) with
 * the update's noise eps[B + i]. */
static double q_loss_by_hand(crl_sac *s, const crl_batch *b, const float *eps) {
    const crl_sac_config *c = crl_sac_get_config(s);
    crl_actor *ac = crl_sac_get_actor(s);
    const crl_mlp *q = crl_sac_critic(s);
    crl_actor_ws aw;
    crl_mlp_ws qw;
    ck_assert_int_eq(crl_actor_ws_alloc(ac, &aw, B, NULL), CRL_OK);
    ck_assert_int_eq(crl_mlp_ws_alloc(&qw, q, B, NULL), CRL_OK);
    const crl_actor_rows rows = {.head = b->task, .cond = b->mix};
    const float *out = crl_actor_forward(ac, &aw, b->obs2, B, &rows);
    float a2[B * A], logp2[B], x[B * (O + A + K)], y[B], qt[2][B], qc[2][B];
    crl_tgauss_forward(B, A, out, eps + B * A, a2, logp2);
    for (int which = 0; which < 2; which++) {
        for (int i = 0; i < B; i++) {
            float *xi = x + i * (O + A + K);
            memcpy(xi, b->obs2 + i * O, sizeof(float) * O);
            memcpy(xi + O, a2 + i * A, sizeof(float) * A);
            memcpy(xi + O + A, b->mix + i * K, sizeof(float) * K);
        }
        const float *t =
            crl_mlp_forward(q, crl_sac_critic_params(s, 2 + which), &qw, x, B, b->task);
        memcpy(qt[which], t, sizeof(float) * B);
        for (int i = 0; i < B; i++) {
            float *xi = x + i * (O + A + K);
            memcpy(xi, b->obs + i * O, sizeof(float) * O);
            memcpy(xi + O, b->act + i * A, sizeof(float) * A);
            memcpy(xi + O + A, b->mix + i * K, sizeof(float) * K);
        }
        const float *qq =
            crl_mlp_forward(q, crl_sac_critic_params(s, which), &qw, x, B, b->task);
        memcpy(qc[which], qq, sizeof(float) * B);
    }
    double loss = 0;
    for (int i = 0; i < B; i++) {
        double al = exp((double)crl_sac_log_alpha(s)[b->task[i]]);
        double m = qt[0][i] < qt[1][i] ? qt[0][i] : qt[1][i];
        y[i] = (float)(b->rew[i] + c->gamma * (1.0 - b->done[i]) * (m - al * logp2[i]));
        double e1 = qc[0][i] - y[i], e2 = qc[1][i] - y[i];
        loss += 0.5 * (e1 * e1 + e2 * e2);
    }
    crl_actor_ws_free(ac, &aw);
    crl_mlp_ws_free(&qw);
    return loss / B;
}

START_TEST(test_target_uses_row_alpha) {
    crl_sac *s = tiny_sac(21);
    grow(s, 3, 22);
    crl_sac_log_alpha(s)[0] = -0.7f;
    crl_sac_log_alpha(s)[1] = 0.3f;
    /* Targets differ from the critics, as after training starts. */
    const size_t nc = crl_sac_critic(s)->n_params;
    crl_rng r;
    crl_rng_seed(&r, 23);
    float *t = crl_sac_critic_params(s, 2);
    for (size_t i = 0; i < 2 * nc; i++) t[i] += 0.05f * (float)crl_rng_normal(&r);
    crl_batch b;
    alloc_batch(&b);
    for (int i = 0; i < B * O; i++) b.obs[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < B * O; i++) b.obs2[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < B * A; i++) b.act[i] = (float)crl_rng_range(&r, -0.9, 0.9);
    for (int i = 0; i < B; i++) {
        b.rew[i] = (float)crl_rng_normal(&r);
        b.done[i] = i % 5 == 0;
        b.task[i] = i % 3 == 0;
        random_mix(&r, 3, b.mix + i * K);
    }
    b.B = B;
    /* The update's own alphas (pi(o) rows), all different from the rows'. */
    float *mu = crl_sac_update_mix(s);
    for (int i = 0; i < 2 * B; i++) random_mix(&r, 3, mu + i * K);
    float eps[2 * B * A];
    for (int i = 0; i < 2 * B * A; i++) eps[i] = (float)crl_rng_normal(&r);
    crl_sac_stats st;
    ck_assert_int_eq(crl_sac_compute_grads(s, &b, eps, &st), CRL_OK);
    double hand = q_loss_by_hand(s, &b, eps);
    ck_assert_msg(fabs(st.q_loss - hand) <= 1e-5 * (1 + fabs(hand)),
                  "q_loss %.9g, by hand with the rows' alphas %.9g", st.q_loss, hand);
    /* And the target does not read the update's alphas: redrawing them
     * leaves the critic loss bit for bit. */
    for (int i = 0; i < 2 * B; i++) random_mix(&r, 3, mu + i * K);
    crl_sac_stats st2;
    ck_assert_int_eq(crl_sac_compute_grads(s, &b, eps, &st2), CRL_OK);
    ck_assert(st2.q_loss == st.q_loss);
    crl_batch_free(&b);
    crl_sac_free(s);
}
END_TEST

/* ---- the shortlist's Q: a mean over replay batches --------------------------- */

START_TEST(test_q_average_over_batches) {
    crl_sac *s = tiny_sac(31);
    grow(s, 3, 32);
    crl_replay rb;
    fill_replay(&rb, 1, 3, 33);
    crl_batch b, b2;
    alloc_batch(&b);
    alloc_batch(&b2);
    enum { NM = 4, NB = 5 };
    float mixes[NM * K];
    crl_rng r;
    crl_rng_seed(&r, 34);
    for (int i = 0; i < NM; i++) random_mix(&r, 3, mixes + i * K);
    double got[NM];
    crl_rng rng;
    crl_rng_seed(&rng, 35);
    ck_assert_int_eq(crl_csp_q_average(s, 1, &rb, &b, &rng, NB, NM, mixes, got, NULL),
                     CRL_OK);
    /* Independently: the same batches (the same generator), the
     * deterministic action of the policy at alpha through crl_sac_act and
     * Q1 through the critic network; mean over rows, then over batches. */
    const crl_mlp *q = crl_sac_critic(s);
    crl_mlp_ws qw;
    ck_assert_int_eq(crl_mlp_ws_alloc(&qw, q, B, NULL), CRL_OK);
    double want[NM] = {0}, first[NM] = {0};
    crl_rng_seed(&rng, 35);
    int heads[B];
    for (int i = 0; i < B; i++) heads[i] = 1;
    for (int bi = 0; bi < NB; bi++) {
        crl_replay_sample(&rb, &rng, B, &b2);
        for (int m = 0; m < NM; m++) {
            float act[B * A], x[B * (O + A + K)];
            crl_sac_set_act_mix(s, mixes + m * K);
            crl_sac_act(s, B, b2.obs, 1, 1, NULL, act);
            for (int i = 0; i < B; i++) {
                memcpy(x + i * (O + A + K), b2.obs + i * O, sizeof(float) * O);
                memcpy(x + i * (O + A + K) + O, act + i * A, sizeof(float) * A);
                memcpy(x + i * (O + A + K) + O + A, mixes + m * K, sizeof(float) * K);
            }
            const float *qq =
                crl_mlp_forward(q, crl_sac_critic_params(s, 0), &qw, x, B, heads);
            double sum = 0;
            for (int i = 0; i < B; i++) sum += qq[i];
            want[m] += sum / B / NB;
            if (bi == 0) first[m] = sum / B;
        }
    }
    for (int m = 0; m < NM; m++) {
        ck_assert_msg(fabs(got[m] - want[m]) <= 1e-5 * (1 + fabs(want[m])),
                      "alpha %d: q_average %.9g, by hand %.9g", m, got[m], want[m]);
        /* More than one batch went in. */
        ck_assert(fabs(first[m] - want[m]) > 1e-4);
    }
    crl_mlp_ws_free(&qw);
    crl_batch_free(&b);
    crl_batch_free(&b2);
    crl_replay_free(&rb);
    crl_sac_free(s);
}
END_TEST

/* ---- fixed rollout seeds ------------------------------------------------------ */

/* The decision of task 2 (three anchors) on a learner and buffer built the
 * same way, with rollouts whose outcome depends on the episode's seed. */
static crl_csp_decision decide_noisy(script *sc, uint64_t seed, int success, float *alpha,
                                     int64_t *budget) {
    crl_sac *s = tiny_sac(41);
    crl_csp_config cc;
    crl_csp_config_default(&cc);
    cc.n_scored = 32;
    cc.shortlist = 4;
    cc.q_batches = 4;
    crl_csp m;
    ck_assert_int_eq(crl_csp_init(&m, &cc, K, NT, NULL), CRL_OK);
    crl_replay rb;
    crl_batch b;
    alloc_batch(&b);
    fill_replay(&rb, 2, 3, 42);
    /* Tasks 0 and 1 kept their anchors (alphas stored by hand). */
    crl_csp_decision d;
    ck_assert_int_eq(crl_csp_task_start(&m, s, 0, 1, NULL), CRL_OK);
    ck_assert_int_eq(
        crl_csp_task_end(&m, s, 0, &rb, &b, 1, success, scripted, sc, &d, NULL), CRL_OK);
    grow(s, 2, 43);
    m.table[1 * K + 1] = 1.0f;
    m.has[1] = 1;
    ck_assert_int_eq(crl_csp_task_start(&m, s, 2, 44, NULL), CRL_OK);
    *budget = crl_csp_validation_budget(&m, 3, 50, success);
    sc->calls = 0;
    sc->R = crl_csp_rollouts(&cc, success);
    ck_assert_int_eq(
        crl_csp_task_end(&m, s, 2, &rb, &b, seed, success, scripted, sc, &d, NULL),
        CRL_OK);
    memcpy(alpha, m.table + 2 * K, sizeof(float) * K);
    memcpy(sc->fin[0], d.alpha_new, sizeof(float) * K);
    memcpy(sc->fin[1], d.alpha_old, sizeof(float) * K);
    crl_replay_free(&rb);
    crl_batch_free(&b);
    crl_csp_free(&m);
    crl_sac_free(s);
    return d;
}

START_TEST(test_fixed_seeds_same_decision) {
    script a = {.noisy = 1}, b2 = {.noisy = 1}, c = {.noisy = 1};
    float al1[K], al2[K], al3[K];
    int64_t budget;
    crl_csp_decision d1 = decide_noisy(&a, 77, 1, al1, &budget);
    crl_csp_decision d2 = decide_noisy(&b2, 77, 1, al2, &budget);
    /* Both finalists faced the same R episodes. */
    ck_assert_int_eq(a.R, CRL_CSP_ROLLOUTS_SUCCESS);
    ck_assert_int_eq(a.calls, 2 * a.R);
    ck_assert_int_eq(budget, 2 * a.R * 50);
    for (int r = 0; r < a.R; r++) {
        ck_assert(a.seeds[r] == a.seeds[a.R + r]);
        ck_assert(a.seeds[r] == crl_csp_rollout_seed(77, r));
        for (int q = 0; q < r; q++) ck_assert(a.seeds[q] != a.seeds[r]);
    }
    /* The same decision twice, to the bit. */
    ck_assert_int_eq(b2.calls, a.calls);
    ck_assert(!memcmp(a.seeds, b2.seeds, sizeof(uint64_t) * (size_t)a.calls));
    ck_assert_int_eq(d1.kept, d2.kept);
    ck_assert(d1.best_new == d2.best_new && d1.best_old == d2.best_old);
    ck_assert(d1.new_success == d2.new_success && d1.old_success == d2.old_success);
    ck_assert(d1.q_new == d2.q_new && d1.q_old == d2.q_old);
    ck_assert(!memcmp(al1, al2, sizeof al1));
    /* The rollouts' returns differ from episode to episode (the seeds
     * matter), yet the finalists' means are over the same episodes: their
     * difference is the alpha term alone. */
    ck_assert(!memcmp(a.fin, b2.fin, sizeof a.fin));
    ck_assert(fabs((d1.best_new - d1.best_old) -
                   30.0 * ((double)a.fin[0][K - 1] - a.fin[1][K - 1])) < 1e-9);
    ck_assert(a.fin[1][K - 1] == 0.0f); /* the old finalist: 0 on the new anchor */
    /* Another seed: other episodes. */
    decide_noisy(&c, 78, 1, al3, &budget);
    ck_assert(c.seeds[0] != a.seeds[0]);
}
END_TEST

/* With the check on, each finalist gets check more rollouts on other seeds,
 * outside the budget, and the decision they make is recorded. */
START_TEST(test_check_decision) {
    crl_sac *s = tiny_sac(3);
    crl_csp_config cc;
    crl_csp_config_default(&cc);
    cc.n_scored = 8;
    cc.shortlist = 2;
    cc.q_batches = 2;
    cc.rollouts = 2;
    cc.check = 3;
    crl_csp m;
    ck_assert_int_eq(crl_csp_init(&m, &cc, K, NT, NULL), CRL_OK);
    crl_replay rb;
    crl_batch b;
    alloc_batch(&b);
    fill_replay(&rb, 1, 2, 5);
    script sc = {.noisy = 1};
    crl_csp_decision d;
    ck_assert_int_eq(crl_csp_task_start(&m, s, 0, 1, NULL), CRL_OK);
    ck_assert_int_eq(crl_csp_task_end(&m, s, 0, &rb, &b, 1, 0, scripted, &sc, &d, NULL),
                     CRL_OK);
    ck_assert_int_eq(d.check_kept, -1);
    ck_assert_int_eq(crl_csp_task_start(&m, s, 1, 2, NULL), CRL_OK);
    ck_assert_int_eq(crl_csp_task_end(&m, s, 1, &rb, &b, 9, 0, scripted, &sc, &d, NULL),
                     CRL_OK);
    ck_assert_int_eq(sc.calls, 2 * 2 + 2 * 3);
    ck_assert_int_eq(d.val_steps, 0); /* max_steps 0 in the script: budget only */
    /* The check's seeds follow the decision's: r = 2, 3, 4 for both. */
    for (int r = 0; r < 3; r++) {
        ck_assert(sc.seeds[4 + r] == crl_csp_rollout_seed(9, 2 + r));
        ck_assert(sc.seeds[7 + r] == crl_csp_rollout_seed(9, 2 + r));
    }
    /* By hand from the script: mean returns over the check's seeds. */
    double nr = 0, o_r = 0;
    for (int r = 0; r < 3; r++) {
        double u = (double)(sc.seeds[4 + r] % 1000) / 1000.0;
        nr += 100.0 * u + 30.0 * d.alpha_new[K - 1];
        o_r += 100.0 * u + 30.0 * d.alpha_old[K - 1];
    }
    nr /= 3;
    o_r /= 3;
    ck_assert(fabs(d.check_new - nr) < 1e-9 && fabs(d.check_old - o_r) < 1e-9);
    ck_assert_int_eq(d.check_kept, nr > o_r + 0.1 * fabs(o_r));
    crl_replay_free(&rb);
    crl_batch_free(&b);
    crl_csp_free(&m);
    crl_sac_free(s);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("csp");
    TCase *tc = tcase_create("decision");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_success_decides_manipulation);
    tcase_add_test(tc, test_target_uses_row_alpha);
    tcase_add_test(tc, test_q_average_over_batches);
    tcase_add_test(tc, test_fixed_seeds_same_decision);
    tcase_add_test(tc, test_check_decision);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
