#!/usr/bin/env python3
"""Speed of crl from Python (docs/python.md), as `name: value unit` lines.

    /usr/bin/python3 bench/bench_python.py [--task halfcheetah] [--seconds 0.3]
                                            [--rounds 5] [--envs 16]

  c_env_step_cpu_<task>      crl_env_step in a C loop (build/bench_vecenv
                             --only-step, another process): CPU us per step
  py_env_step_cpu_<task>     crl.make(task).step(a) in a Python loop: CPU us
                             per step
  py_raw_step_cpu_<task>     the least Python can do: a loop calling
                             crl_env_step through cffi on preallocated
                             buffers (CPU us per step)
  py_call_cpu                the same loop calling a C function that does
                             nothing (crl_env_steps_taken): the loop and call
  py_c_step_cpu_<task>       py_raw_step - py_call: the C step as seen from
                             this process (compare c_env_step_cpu)
  py_step_overhead_<task>    what Python adds to the C step, in us and in
                             percent of it (targets: <= 5 us, <= 20 %):
                             py_env_step - (py_raw_step - py_call), all
                             measured in this process in interleaved chunks
                             (medians), so that a neighbour slowing the core
                             slows all three alike
  py_env_1_<task>            env steps/s (wall) of one Env stepped from Python
  py_vecenv_<n>_t<k>_<task>  env steps/s (wall) of VecEnv(task, n, threads=k),
                             all envs counted
  vecenv_speedup_<n>_t<k>    over one Env (target for k = 2: >= 1.6x)

The overhead is measured in CPU time of the stepping thread
(time.thread_time), so the time a neighbour takes the core away counts for
none of the loops; a neighbour on the same physical core still slows the
CPU itself, hence the interleaving; the speedups are wall
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


def interleaved_overhead(task, acts, rounds, chunk=100):
    """Medians of CPU us per iteration of three loops, in interleaved chunks:
    Env.step, raw cffi crl_env_step, and a call of a do-nothing C function."""
    from crl._lib import ffi, lib

    L = lib()
    env = crl.make(task, seed=0)
    env.reset()
    raw_env = crl.make(task, seed=0)
    e = raw_env._e
    ad, od = env.action_space.shape[0], env.observation_space.shape[0]
    abuf, obuf = ffi.new("float[]", ad), ffi.new("float[]", od)
    aview = np.frombuffer(ffi.buffer(abuf), np.float32)
    info = ffi.new("crl_step_info *")
    step_c, reset_c, nothing = L.crl_env_step, L.crl_env_reset, L.crl_env_steps_taken
    L.crl_env_reset(e, 0, obuf)
    na = len(acts)
    pos = [0, 0, 0]

    def py_chunk():
        step, i = env.step, pos[0]
        c0 = time.thread_time()
        for _ in range(chunk):
            _, _, term, trunc, _ = step(acts[i])
            i = i + 1 if i + 1 < na else 0
            if term or trunc:
                env.reset()
        pos[0] = i
        return time.thread_time() - c0

    def raw_chunk():
        i = pos[1]
        c0 = time.thread_time()
        for _ in range(chunk):
            aview[...] = acts[i]
            step_c(e, abuf, obuf, info)
            i = i + 1 if i + 1 < na else 0
            if info.terminal or info.truncated:
                reset_c(e, i, obuf)
        pos[1] = i
        return time.thread_time() - c0

    def call_chunk():
        i = pos[2]
        c0 = time.thread_time()
        for _ in range(chunk):
            aview[...] = acts[i]
            nothing(e)
            i = i + 1 if i + 1 < na else 0
            if info.terminal or info.truncated:
                pass
        pos[2] = i
        return time.thread_time() - c0

    t = {"py": [], "raw": [], "call": []}
    for r in range(rounds):
        order = [("py", py_chunk), ("raw", raw_chunk), ("call", call_chunk)]
        for k, f in order[r % 3:] + order[:r % 3]:
            t[k].append(1e6 * f() / chunk)
    env.close()
    raw_env.close()
    return {k: float(np.median(v)) for k, v in t.items()}


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
    if have_c:
        best_c = min(c_step_cpu_us(a.bench_vecenv, task, a.seconds) for _ in range(a.rounds))
        print("c_env_step_cpu_%s: %.2f us" % (task, best_c))
    m = interleaved_overhead(task, acts, rounds=60 * a.rounds)
    c_step = m["raw"] - m["call"]
    print("py_env_step_cpu_%s: %.2f us" % (task, m["py"]))
    print("py_raw_step_cpu_%s: %.2f us" % (task, m["raw"]))
    print("py_call_cpu: %.2f us" % m["call"])
    print("py_c_step_cpu_%s: %.2f us" % (task, c_step))
    print("py_step_overhead_%s: %.2f us" % (task, m["py"] - c_step))
    print("py_step_overhead_pct_%s: %.1f %%" % (task, 100.0 * (m["py"] - c_step) / c_step))

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
