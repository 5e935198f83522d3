/* Training diagnostics: averaged diag/... rows every N updates, the runaway
 * detector, and which tasks report success (docs/diagnostics.md). */
#include "agents/diag.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "crl/env.h"

int crl_task_has_success(const char *name) {
    if (!name) return 0;
    const crl_env_entry *list;
    const int n = crl_env_list(&list);
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i].name, name)) return strcmp(list[i].group, "locomotion") != 0;
    return 0; /* a user's MJCF task: a reward, no success */
}

/* ---- the runaway detector (rule in crl/runner.h) ------------------------------- */

void crl_runaway_init(crl_runaway *d) {
    memset(d, 0, sizeof *d);
}

void crl_runaway_task_start(crl_runaway *d) {
    d->warned = 0;
    d->n = 0;
    d->fast = d->slow = 0;
}

void crl_runaway_reward(crl_runaway *d, double reward) {
    const double a = fabs(reward);
    if (a > d->max_abs_reward) d->max_abs_reward = a; /* NaN never compares */
}

int crl_runaway_update(crl_runaway *d, const crl_sac_stats *st, double gamma, char *msg,
                       size_t cap) {
    const double bonus = fabs(st->alpha * st->logp);
    if (bonus > d->max_abs_bonus) d->max_abs_bonus = bonus;
    /* Rule 2's averages, of log loss: an explosion is exponential, and an
     * average of the values themselves would chase it. The slow one moves
     * after the check, so that it is never compared with itself. */
    const double loss = st->q_loss, l = log(fmax(loss, 1e-30));
    if (++d->n == 1) d->fast = d->slow = l;
    d->fast += (l - d->fast) / 5;
    const double rq = gamma < 1 ? d->max_abs_reward / (1 - gamma) : INFINITY;
    const int grew = d->n > CRL_RUNAWAY_WARMUP &&
                     d->fast - d->slow > log(CRL_RUNAWAY_RATIO) && loss > rq * rq + 1;
    const double slow = exp(d->slow);
    d->slow += (l - d->slow) / 1000;
    if (d->warned) return 0;
    const double qmax =
        gamma < 1 ? (d->max_abs_reward + d->max_abs_bonus) / (1 - gamma) : INFINITY;
    const double q_bound = 10 * qmax + 1, loss_bound = 100 * qmax * qmax + 1;
    /* Written so that a NaN or Inf also counts (the last chance to say it). */
    const int q_bad =
        !(fabs(st->q_mean) <= q_bound) && !(gamma >= 1 && isfinite(st->q_mean));
    const int loss_bad = !(loss <= loss_bound) && !(gamma >= 1 && isfinite(loss));
    if (!q_bad && !loss_bad && !grew) return 0;
    d->warned = 1;
    if (msg && cap) {
        if (grew && !q_bad && !loss_bad)
            snprintf(msg, cap,
                     "the critic loss is exploding: %.3g, its (geometric) average over "
                     "the last ~5 updates %.3g is over %.0fx that over ~1000 (%.3g), "
                     "and beyond (max|r| / (1 - gamma))^2 + 1 = %.3g",
                     loss, exp(d->fast), CRL_RUNAWAY_RATIO, slow, rq * rq + 1);
        else if (q_bad)
            snprintf(
                msg, cap,
                "Q is running away: mean Q %.3g, beyond 10 Q_max + 1 = %.3g (Q_max = "
                "(max|r| %.3g + max|alpha logp| %.3g) / (1 - gamma %.3g))",
                st->q_mean, q_bound, d->max_abs_reward, d->max_abs_bonus, gamma);
        else
            snprintf(msg, cap,
                     "the critic loss is exploding: %.3g, beyond 100 Q_max^2 + 1 = %.3g "
                     "(Q_max = (max|r| %.3g + max|alpha logp| %.3g) / (1 - gamma %.3g))",
                     st->q_loss, loss_bound, d->max_abs_reward, d->max_abs_bonus, gamma);
    }
    return 1;
}

/* ---- accumulators and rows ------------------------------------------------------ */

static void reset_sums(diag_state *d) {
    d->n = 0;
    d->q_loss = d->pi_loss = d->alpha = d->q_mean = d->logp = 0;
    d->gn_actor = d->gn_critic = 0;
    d->n_ep = 0;
    d->ep_ret = d->ep_succ = 0;
}

void diag_init(diag_state *d, int64_t every, int bc, double gamma, int64_t step) {
    memset(d, 0, sizeof *d);
    d->every = every > 0 ? every : 0;
    d->bc = bc;
    d->gamma = gamma;
    d->t_last = crl_now();
    d->step_last = step;
    crl_runaway_init(&d->rw);
}

void diag_update(diag_state *d, const crl_sac_stats *st) {
    d->n++;
    d->q_loss += st->q_loss;
    d->pi_loss += st->pi_loss;
    d->alpha += st->alpha;
    d->q_mean += st->q_mean;
    d->logp += st->logp;
    d->gn_actor += st->grad_norm_actor;
    d->gn_critic += st->grad_norm_critic;
    if (!d->bc && !d->warn_pending &&
        crl_runaway_update(&d->rw, st, d->gamma, d->warn, sizeof d->warn))
        d->warn_pending = 1;
}

void diag_reward(diag_state *d, double r) {
    crl_runaway_reward(&d->rw, r);
}

void diag_episode(diag_state *d, double ret, int success) {
    d->n_ep++;
    d->ep_ret += ret;
    d->ep_succ += success != 0;
}

void diag_pause(diag_state *d, double seconds) {
    if (seconds > 0) d->paused += seconds;
}

int diag_due(const diag_state *d) {
    return d->every > 0 && d->n >= d->every;
}

void diag_task_start(diag_state *d) {
    crl_runaway_task_start(&d->rw);
}

void diag_write(diag_state *d, crl_store *store, int64_t run_id, int64_t step,
                int success) {
    if (d->every <= 0 || d->n == 0) return;
    const double n = (double)d->n;
    /* Batched in the store's open transaction, like every metric; a failed
     * row is not worth failing the run for. */
#define PUT(key, v) crl_store_metric(store, run_id, step, "diag/" key, (v), NULL)
    if (!d->bc) {
        PUT("critic_loss", d->q_loss / n);
        PUT("alpha", d->alpha / n);
        PUT("q_mean", d->q_mean / n);
        PUT("grad_norm_critic", d->gn_critic / n);
    }
    PUT("actor_loss", d->pi_loss / n);
    if (isfinite(d->logp)) PUT("entropy", -d->logp / n); /* BC mse: no log pi */
    PUT("grad_norm_actor", d->gn_actor / n);
    if (d->n_ep > 0) {
        PUT("train_return", d->ep_ret / (double)d->n_ep);
        if (success) PUT("train_success", d->ep_succ / (double)d->n_ep);
    }
    const double now = crl_now(), dt = now - d->t_last - d->paused;
    if (dt > 0) {
        if (!d->bc) PUT("env_steps_per_s", (double)(step - d->step_last) / dt);
        PUT("updates_per_s", n / dt);
    }
#undef PUT
    d->t_last = now;
    d->paused = 0;
    d->step_last = step;
    reset_sums(d);
}

void diag_warn_flush(diag_state *d, crl_store *store, int64_t run_id, int64_t step,
                     int task, int n_tasks, const char *task_name, crl_note_fn note,
                     void *ctx) {
    if (!d->warn_pending) return;
    d->warn_pending = 0;
    crl_store_metric(store, run_id, step, "diag/runaway", 1, NULL);
    if (!note) return;
    crl_note nt;
    memset(&nt, 0, sizeof nt);
    nt.kind = CRL_NOTE_WARNING;
    nt.task = task;
    nt.n_tasks = n_tasks;
    nt.task_name = task_name;
    nt.step = step;
    nt.value = nt.prev = NAN;
    nt.message = d->warn;
    note(&nt, ctx);
}

double diag_eval_value(int has_success, int episodes, double success_rate,
                       double mean_return, double det_return, double det_success) {
    if (episodes > 0) return has_success ? success_rate : mean_return;
    if (has_success) return det_success >= 0 ? det_success : NAN;
    return det_return;
}

void diag_note_eval(crl_note_fn note, void *ctx, int task, int n_tasks,
                    const char *task_name, int64_t step, int has_success, double value,
                    double prev) {
    if (!note) return;
    crl_note nt;
    memset(&nt, 0, sizeof nt);
    nt.kind = CRL_NOTE_EVAL;
    nt.task = task;
    nt.n_tasks = n_tasks;
    nt.task_name = task_name;
    nt.step = step;
    nt.has_success = has_success;
    nt.value = value;
    nt.prev = prev;
    note(&nt, ctx);
}
