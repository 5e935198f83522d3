"""crl's tasks in gymnasium's registry, for code that calls gymnasium.make.

    import crl.gym
    crl.gym.register()                      # ids "crl/push-v0", ...
    env = gymnasium.make("crl/push-v0")

gymnasium is optional (it is not a Debian package); register() raises
ImportError saying so when it is not importable. The envs are crl.Env
instances behind a gymnasium.Env subclass, with gymnasium Box spaces.
"""

import numpy as np

from .env import Env, tasks

PREFIX = "crl/"


def _gymnasium():
    try:
        import gymnasium
    except ImportError as exc:
        raise ImportError(
            "crl.gym.register() needs the gymnasium package, which is not installed "
            "(pip install gymnasium); crl.make() works without it"
        ) from exc
    return gymnasium


def env_id(task):
    return "%s%s-v0" % (PREFIX, task)


def _env_class(gymnasium):
    class CrlGymEnv(gymnasium.Env):
        """A crl.Env as a gymnasium.Env (gymnasium.make("crl/TASK-v0"))."""

        metadata = {"render_modes": ["rgb_array"]}

        def __init__(self, task, render_mode=None, **kwargs):
            self._env = Env(task, **kwargs)
            od = self._env.observation_space.shape
            ad = self._env.action_space.shape
            self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, od, np.float32)
            self.action_space = gymnasium.spaces.Box(-1.0, 1.0, ad, np.float32)
            self.render_mode = render_mode

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return self._env.reset(seed=seed)

        def step(self, action):
            return self._env.step(action)

        def render(self):
            return self._env.render()

        def close(self):
            self._env.close()

    return CrlGymEnv


def register():
    """Register every crl task as "crl/<task>-v0" with gymnasium; returns the ids."""
    gymnasium = _gymnasium()
    cls = _env_class(gymnasium)
    ids = []
    for t in tasks():
        i = env_id(t.name)
        if i not in gymnasium.envs.registry:
            gymnasium.register(
                id=i,
                entry_point=lambda task=t.name, **kw: cls(task, **kw),
            )
        ids.append(i)
    return ids
