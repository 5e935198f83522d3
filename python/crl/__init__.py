"""crl from Python: tasks, vectorised tasks, policies and runs over the C
library (docs/python.md).

Environments and policies: crl.make, crl.scenario, crl.VecEnv, crl.Policy.
Runs: crl.runs, crl.evals, crl.metrics, crl.episode, crl.replay, crl.train.
"""

from ._lib import CrlError, library_path  # noqa: F401

__all__ = ["CrlError", "library_path"]

# The helpers' modules register here (one import line each).
from .runs import (  # noqa: E402,F401
    episode,
    episodes,
    evals,
    metrics,
    replay,
    report,
    runs,
    tasks,
)
from .train import train  # noqa: E402,F401

__all__ += ["runs", "tasks", "evals", "metrics", "report", "episode", "episodes"]
__all__ += ["replay", "train"]
