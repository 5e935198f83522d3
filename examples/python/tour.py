"""A tour of crl from Python: a run into pandas, its success matrix, a
trained policy stepping its task, and one frame saved as a PNG.

From the repository, after `make`:

    PYTHONPATH=python /usr/bin/python3 examples/python/tour.py [OUT_DIR]

It trains a small pendulum agent (about 15 s), so it needs nothing else.
matplotlib is optional: without it the success matrix is printed only.
"""

import os
import sys
import tempfile

import crl

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="crl-tour-")
os.makedirs(out, exist_ok=True)
db = os.path.join(out, "tour.db")

# 1. Train from Python: the same options as `crl train`, one progress line.
run = crl.train(db, env="pendulum", steps=6000, eval_every=2000, seed=1, threads=1,
                progress=True)
print("run", run)

# 2. The run in pandas: runs, evaluations with task names joined.
print(crl.runs(db)[["id", "method", "scenario", "status", "last_step"]])
ev = crl.evals(db, run)
print(ev.head())

# 3. The success matrix (evaluation step x task), plotted when matplotlib is there.
matrix = ev.pivot_table(index="step", columns="eval_task_name", values="success")
print(matrix)
try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = matrix.plot(marker="o", ylim=(-0.05, 1.05), title="success")
    ax.figure.savefig(os.path.join(out, "success.png"), dpi=100)
    print("plot:", os.path.join(out, "success.png"))
except ImportError:
    print("matplotlib is not installed: no plot (python3-matplotlib)")

# 4. Export the policy with the CLI, load it, and step the task with it.
crl_bin = os.environ.get("CRL_BIN", os.path.join(os.path.dirname(__file__), "..", "..",
                                                 "build", "crl"))
policy_path = os.path.join(out, "agent.crlp")
if os.system('"%s" export --db "%s" --run %d -o "%s" > /dev/null' % (crl_bin, db, run,
                                                                      policy_path)):
    sys.exit("crl export failed")
policy = crl.Policy.load(policy_path)
env = crl.make("pendulum", seed=7)
obs, info = env.reset()
ret = 0.0
for t in range(200):
    obs, reward, terminated, truncated, info = env.step(policy.act(obs))
    ret += reward
    if terminated or truncated:
        break
print("return of one deterministic episode: %.1f" % ret)

# 5. One frame of the final state, through the headless renderer.
frame = env.render()
crl.save_png(os.path.join(out, "frame.png"), frame)
print("frame:", os.path.join(out, "frame.png"), frame.shape)
env.close()
