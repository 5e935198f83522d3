"""crl from Python: tasks, vectorised tasks, policies and runs over the C
library (docs/python.md).

Environments and policies: crl.make, crl.scenario, crl.VecEnv, crl.Policy.
Runs: crl.runs, crl.evals, crl.metrics, crl.episode, crl.replay, crl.train.
"""

from ._lib import CrlError, library_path  # noqa: F401

# The env module declares the shared C types first; runs and train
# re-declare some of them with override=True and so come last.
from .env import (  # noqa: E402,F401
    Box,
    Env,
    Scenario,
    ScenarioTask,
    TaskInfo,
    episode_seed,
    make,
    save_png,
    scenario,
    scenarios,
    tasks,
)
from .vec import VecEnv  # noqa: E402,F401
from .policy import Policy  # noqa: E402,F401
from . import gym  # noqa: E402,F401
from .runs import (  # noqa: E402,F401
    episode,
    episodes,
    evals,
    metrics,
    replay,
    report,
    run_tasks,
    runs,
)
from .train import train  # noqa: E402,F401

__all__ = [
    "CrlError", "library_path",
    "Box", "Env", "Scenario", "ScenarioTask", "TaskInfo", "episode_seed", "make", "save_png",
    "scenario", "scenarios", "tasks", "VecEnv", "Policy", "gym",
    "runs", "run_tasks", "evals", "metrics", "report", "episode", "episodes",
    "replay", "train",
]
