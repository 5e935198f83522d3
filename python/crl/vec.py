"""Vectorised environments: n instances of one task stepped in one C call
(include/crl/vecenv.h), with auto-reset, on one or two threads.

    venv = crl.VecEnv("halfcheetah", 16, seed=0, threads=2)
    obs, info = venv.reset()                       # (16, obs_dim)
    obs, rew, term, trunc, info = venv.step(actions)  # actions (16, act_dim)

Auto-reset: when env i's episode ends at a step (term[i] or trunc[i]),
obs[i] is already the first observation of its next episode and
info["final_obs"][i] is the observation the ended episode reached.
info["final_obs"] is filled for every row (for envs that go on it equals
obs[i]), so ``next_obs = info["final_obs"]`` is always the transition's
next state. Seeds: env i's episode k uses crl_vecenv_episode_seed(base, i, k),
base being the seed of the last reset (make's seed, 0 by default, for the
first; reset r >= 1 without a seed uses episode_seed(seed, 0, r)).
"""

import math

import numpy as np

from . import _lib
from ._lib import ffi
from .env import Box, _seed_value, _Spec

_lib.declare(
    """
    typedef struct crl_vecenv crl_vecenv;
    int crl_vecenv_create(const crl_env_spec *spec, int n, int threads,
                          crl_vecenv **out, crl_err *err);
    void crl_vecenv_free(crl_vecenv *v);
    int crl_vecenv_size(const crl_vecenv *v);
    int crl_vecenv_threads(const crl_vecenv *v);
    void crl_vecenv_reset(crl_vecenv *v, uint64_t seed, float *obs);
    void crl_vecenv_step(crl_vecenv *v, const float *act, float *obs, float *reward,
                         unsigned char *terminated, unsigned char *truncated,
                         unsigned char *success, float *final_obs);
    int64_t crl_vecenv_episodes(const crl_vecenv *v, int i);
    """
)

MAX_ENVS = 4096


class VecEnv(_lib.Owned):
    """n instances of one task (a name, a scenario task or an MJCF file as in
    crl.make), stepped together on `threads` lanes (1 or 2)."""

    def __init__(self, name=None, n=1, seed=None, threads=1, xml=None, **options):
        self._v = ffi.NULL
        self._spec = None
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_ENVS:
            raise ValueError("crl.VecEnv: n must be an int in [1, %d], not %r" % (MAX_ENVS, n))
        if threads not in (1, 2) or isinstance(threads, bool):
            raise ValueError("crl.VecEnv: threads must be 1 or 2, not %r" % (threads,))
        self._base = _seed_value(0 if seed is None else seed, "seed")
        self._spec = _Spec(name, xml, options, "crl.VecEnv")
        L = _lib.lib()
        err = _lib.new_err()
        out = ffi.new("crl_vecenv **")
        rc = L.crl_vecenv_create(self._spec.ptr, int(n), int(threads), out, err)
        if rc:
            self._spec.free()
            _lib.check(rc, err, "crl.VecEnv")
        self._v = out[0]
        sp = self._spec
        self.name = sp.name
        self.num_envs = int(n)
        self.threads = L.crl_vecenv_threads(self._v)
        self.max_episode_steps = sp.max_steps
        self.single_observation_space = Box(-np.inf, np.inf, (sp.obs_dim,), seed)
        self.single_action_space = Box(-1.0, 1.0, (sp.act_dim,), seed)
        self.observation_space = Box(-np.inf, np.inf, (n, sp.obs_dim), seed)
        self.action_space = Box(-1.0, 1.0, (n, sp.act_dim), seed)
        self._ashape = (self.num_envs, sp.act_dim)
        od = sp.obs_dim
        # C-owned buffers the step writes into; step returns copies.
        self._abuf = ffi.new("float[]", n * sp.act_dim)
        self._obuf = ffi.new("float[]", n * od)
        self._fbuf = ffi.new("float[]", n * od)
        self._rbuf = ffi.new("float[]", n)
        self._tbuf = ffi.new("unsigned char[]", n)
        self._ubuf = ffi.new("unsigned char[]", n)
        self._sbuf = ffi.new("unsigned char[]", n)
        self._a = np.frombuffer(ffi.buffer(self._abuf), np.float32).reshape(self._ashape)
        self._o = np.frombuffer(ffi.buffer(self._obuf), np.float32).reshape(n, od)
        self._f = np.frombuffer(ffi.buffer(self._fbuf), np.float32).reshape(n, od)
        self._r = np.frombuffer(ffi.buffer(self._rbuf), np.float32)
        self._t = np.frombuffer(ffi.buffer(self._tbuf), np.bool_)
        self._u = np.frombuffer(ffi.buffer(self._ubuf), np.bool_)
        self._s = np.frombuffer(ffi.buffer(self._sbuf), np.bool_)
        self._resets = 0
        self._started = False

    def reset(self, seed=None, options=None):
        """Start episode 0 of every env. Returns (obs (n, obs_dim), info)."""
        self._check_open()
        if seed is not None:
            self._base = _seed_value(seed, "reset seed")
            self._resets = 0
        L = _lib.lib()
        base = int(L.crl_vecenv_episode_seed(self._base, 0, self._resets))
        self._resets += 1
        L.crl_vecenv_reset(self._v, base, self._obuf)
        self._started = True
        return self._o.copy(), {"seed": base}

    def step(self, actions):
        """Step every env: (obs, reward, terminated, truncated, info) as arrays
        of n rows; info["success"] (bool), info["final_obs"] (see the module
        doc). actions: (n, act_dim) finite real numbers (NaN/inf and a wrong
        shape raise ValueError)."""
        if not self._started:
            self._check_open()
            raise ValueError("crl.VecEnv: call reset() before step()")
        if type(actions) is np.ndarray and actions.shape == self._ashape:
            try:
                self._a[...] = actions
            except (TypeError, ValueError):
                self._bad(actions)
        else:
            self._bad(actions)
        if not math.isfinite(sum(self._a.ravel().tolist())):
            self._bad(actions)
        _lib.lib().crl_vecenv_step(
            self._v, self._abuf, self._obuf, self._rbuf, self._tbuf, self._ubuf, self._sbuf,
            self._fbuf,
        )
        info = {"success": self._s.copy(), "final_obs": self._f.copy()}
        return self._o.copy(), self._r.copy(), self._t.copy(), self._u.copy(), info

    def episodes(self):
        """Episodes each env started since the last reset (1 after it)."""
        self._check_open()
        L = _lib.lib()
        return np.array([L.crl_vecenv_episodes(self._v, i) for i in range(self.num_envs)])

    def close(self):
        if _lib._lib is None:
            return
        if getattr(self, "_v", ffi.NULL) != ffi.NULL:
            _lib.lib().crl_vecenv_free(self._v)
            self._v = ffi.NULL
        if getattr(self, "_spec", None) is not None:
            self._spec.free()
        self._started = False

    @property
    def closed(self):
        return self._v == ffi.NULL

    def __repr__(self):
        return "crl.VecEnv(%r, %d, threads=%d)" % (self.name, self.num_envs, self.threads)

    def _check_open(self):
        if self._v == ffi.NULL:
            raise ValueError("crl.VecEnv: closed")

    def _bad(self, actions):
        self._check_open()
        try:
            a = np.asarray(actions)
        except Exception as exc:
            raise ValueError("crl.VecEnv: actions must be an array (%s)" % exc) from None
        if a.dtype.kind not in "biuf":
            raise ValueError("crl.VecEnv: actions must be real numbers, not dtype %s" % a.dtype)
        if a.shape != self._ashape:
            raise ValueError(
                "crl.VecEnv: actions have shape %s; %d envs of '%s' take shape %s"
                % (a.shape, self.num_envs, self.name, self._ashape)
            )
        self._a[...] = a
        if not np.isfinite(self._a).all():
            bad = sorted(set(np.nonzero(~np.isfinite(self._a))[0].tolist()))
            raise ValueError("crl.VecEnv: actions of envs %s have NaN or infinite entries" % bad)
