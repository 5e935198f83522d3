"""crl from Python: tasks, vectorised tasks, policies and runs over the C
library (docs/python.md).

Environments and policies: crl.make, crl.scenario, crl.VecEnv, crl.Policy.
Runs: crl.runs, crl.evals, crl.metrics, crl.episode, crl.replay, crl.train.
"""

from ._lib import CrlError, library_path  # noqa: F401

__all__ = ["CrlError", "library_path"]

# The helpers' modules register here (one import line each).
from .env import Box, Env, Scenario, ScenarioTask, TaskInfo, episode_seed, make, scenario, scenarios, tasks  # noqa: E402,F401
from .vec import VecEnv  # noqa: E402,F401
from .policy import Policy  # noqa: E402,F401
from . import gym  # noqa: E402,F401
