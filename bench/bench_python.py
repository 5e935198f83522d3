#!/usr/bin/env python3
"""Speed of crl from Python (docs/python.md), as `name: value unit` lines.

    /usr/bin/python3 bench/bench_python.py [--task halfcheetah] [--seconds 0.3]
                                            [--rounds 5] [--envs 16]

  c_env_step_cpu_<task>      crl_env_step in a C loop (build/bench_vecenv
                             --only-step): CPU microseconds per step
  py_env_step_cpu_<task>     crl.make(task).step(a) in a Python loop (the same
                             work plus the package): CPU microseconds per step
  py_step_overhead_<task>    the difference: microseconds, and percent of the
                             C step (targets: <= 5 us, <= 20 %)
  py_env_1_<task>            env steps/s (wall) of one Env stepped from Python
  py_vecenv_<n>_t<k>_<task>  env steps/s (wall) of VecEnv(task, n, threads=k),
                             all envs counted
  vecenv_speedup_<n>_t<k>    over one Env (target for k = 2: >= 1.6x)

The overhead is measured in CPU time of the stepping thread
(CLOCK_THREAD_CPUTIME_ID in C, time.thread_time in Python), so the time a
neighbour takes the core away counts for neither; the speedups are wall
time, which a loaded machine caps (two lanes need two free cores). The C
and Python loops run in alternating rounds and the best round of each
counts. python3-mujoco (MuJoCo's own bindings) is compared with when
importable; it is not a Debian 12 package and not installed here, and the
script says so.
"""

import argparse
import os
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "python"))

import numpy as np  # noqa: E402

import crl  # noqa: E402


def c_step_cpu_us(bench, task, seconds):
    out = subprocess.run(
        [bench, "--task", task, "--seconds", str(seconds), "--only-step"],
        capture_output=True, text=True, check=True,
    ).stdout
    m = re.search(r"^env_step_cpu_%s:\s*([0-9.eE+]+) us" % re.escape(task), out, re.M)
    if not m:
        raise SystemExit("bench_python: no env_step_cpu_%s line from %s:\n%s" % (task, bench, out))
    return float(m.group(1))


def py_steps(env, actions, seconds):
    """(wall steps/s, CPU us per step) of Env.step in a Python loop."""
    step, reset = env.step, env.reset
    n, i, na = 0, 0, len(actions)
    t0, c0 = time.perf_counter(), time.thread_time()
    while True:
        for _ in range(64):
            _, _, term, trunc, _ = step(actions[i])
            i = i + 1 if i + 1 < na else 0
            if term or trunc:
                reset()
        n += 64
        t = time.perf_counter() - t0
        if t >= seconds:
            return n / t, 1e6 * (time.thread_time() - c0) / n


def vec_steps_per_s(venv, actions, seconds):
    step = venv.step
    n, i, na = 0, 0, len(actions)
    t0 = time.perf_counter()
    while True:
        for _ in range(8):
            step(actions[i])
            i = i + 1 if i + 1 < na else 0
        n += 8 * venv.num_envs
        t = time.perf_counter() - t0
        if t >= seconds:
            return n / t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="halfcheetah")
    ap.add_argument("--seconds", type=float, default=0.3, help="per loop and round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--envs", type=int, default=16)
    ap.add_argument("--bench-vecenv", default=os.path.join(REPO, "build", "bench_vecenv"))
    a = ap.parse_args()
    task = a.task

    print("# crl from Python: %s" % crl.library_path())
    print("# python %s, numpy %s" % (sys.version.split()[0], np.__version__))
    print("# OPENBLAS_CORETYPE=%s (unused by env stepping), threads: Env 1, VecEnv 1 or 2"
          % os.environ.get("OPENBLAS_CORETYPE", "unset"))
    print("# cores %d, load average %.2f %.2f %.2f at start (figures under that load)"
          % ((os.cpu_count(),) + os.getloadavg()))
    try:
        import mujoco  # noqa: F401

        print("# python3-mujoco %s is installed; no comparison written yet" % mujoco.__version__)
    except ImportError:
        print("# python3-mujoco (MuJoCo's own Python bindings) is not installed: "
              "no comparison with it")

    env = crl.make(task, seed=0)
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (4096,) + env.action_space.shape).astype(np.float32)
    env.reset()
    have_c = os.access(a.bench_vecenv, os.X_OK)
    if not have_c:
        print("# %s not built: no C reference" % a.bench_vecenv)
    best_c = best_py = 1e30
    for _ in range(a.rounds):
        if have_c:
            best_c = min(best_c, c_step_cpu_us(a.bench_vecenv, task, a.seconds))
        best_py = min(best_py, py_steps(env, acts, a.seconds)[1])
    if have_c:
        print("c_env_step_cpu_%s: %.2f us" % (task, best_c))
    print("py_env_step_cpu_%s: %.2f us" % (task, best_py))
    if have_c:
        print("py_step_overhead_%s: %.2f us" % (task, best_py - best_c))
        print("py_step_overhead_pct_%s: %.1f %%" % (task, 100.0 * (best_py - best_c) / best_c))

    n = a.envs
    venvs = {k: crl.VecEnv(task, n, seed=0, threads=k) for k in (1, 2)}
    vacts = rng.uniform(-1, 1, (64, n) + env.action_space.shape).astype(np.float32)
    for v in venvs.values():
        v.reset()
    best = {"one": 0.0, 1: 0.0, 2: 0.0}
    for _ in range(a.rounds):
        best["one"] = max(best["one"], py_steps(env, acts, a.seconds)[0])
        for k, v in venvs.items():
            best[k] = max(best[k], vec_steps_per_s(v, vacts, a.seconds))
    print("py_env_1_%s: %.0f steps/s" % (task, best["one"]))
    for k in (1, 2):
        print("py_vecenv_%d_t%d_%s: %.0f steps/s" % (n, k, task, best[k]))
    print("vecenv_speedup_%d_t1: %.2f x" % (n, best[1] / best["one"]))
    print("vecenv_speedup_%d_t2: %.2f x" % (n, best[2] / best["one"]))
    print("# load average %.2f %.2f %.2f at the end" % os.getloadavg())


if __name__ == "__main__":
    main()
