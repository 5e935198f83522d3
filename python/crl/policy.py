"""Trained crl agents (.crlp files written by `crl export`) from Python.

    pol = crl.Policy.load("agent.crlp")
    a = pol.act(obs, task="push")                 # one observation -> (act_dim,)
    A = pol.act(obs_batch, task=0)                # (B, obs_dim) -> (B, act_dim)
    a = pol.act(obs, deterministic=False)         # tanh(mean + std * N(0,1))

Actions equal crl_policy_act (1-D) and crl_policy_act_batch with B rows
(2-D) bit for bit. The rounding of a batch depends on its size B (BLAS
blocking): row i of a batch of B equals act() on that row alone only when
B == 1, so compare like with like (crl eval acts on all its episodes as one
batch). Stochastic actions draw their normals from the policy's own
generator (crl_rng seeded by Policy.load's seed, or seed()), as a C caller
passing one crl_rng to successive calls would.
"""

import os

import numpy as np

from . import _lib
from ._lib import CrlError, ffi

_lib.declare(
    """
    typedef struct crl_policy crl_policy;
    typedef enum { CRL_POLICY_DETERMINISTIC = 0, CRL_POLICY_SAMPLE = 1 } crl_policy_mode;
    int crl_policy_load(const char *path, crl_policy **out, char *errbuf, size_t errlen);
    void crl_policy_free(crl_policy *p);
    int crl_policy_obs_dim(const crl_policy *p);
    int crl_policy_act_dim(const crl_policy *p);
    int crl_policy_num_tasks(const crl_policy *p);
    const char *crl_policy_task_name(const crl_policy *p, int task);
    int crl_policy_task_position(const crl_policy *p, int task);
    int crl_policy_task_max_steps(const crl_policy *p, int task);
    int crl_policy_task_frame_skip(const crl_policy *p, int task);
    const char *crl_policy_method(const crl_policy *p);
    const char *crl_policy_crl_version(const crl_policy *p);
    const char *crl_policy_error(const crl_policy *p);
    int crl_policy_act(crl_policy *p, int task, const float *obs, float *action,
                       crl_policy_mode mode, crl_rng *rng);
    int crl_policy_act_batch(crl_policy *p, int task, int B, const float *obs,
                             float *action, crl_policy_mode mode, crl_rng *rng);
    int crl_policy_set_batch(crl_policy *p, int max_batch);
    void crl_policy_episode_start(crl_policy *p);
    """
)

MAX_BATCH = 1 << 16


def _s(p):
    return ffi.string(p).decode("utf-8", "replace") if p != ffi.NULL else None


class Policy(_lib.Owned):
    """A loaded .crlp policy. Use Policy.load(path)."""

    def __init__(self, path, seed=0):
        self._p = ffi.NULL
        if not isinstance(path, (str, bytes, os.PathLike)):
            raise TypeError("crl.Policy.load: path must be a file path, not %r" % (path,))
        path = os.fsdecode(path)
        if not os.path.exists(path):
            raise FileNotFoundError("crl.Policy.load: no such file: %s" % path)
        if os.path.isdir(path):
            raise IsADirectoryError("crl.Policy.load: %s is a directory, not a .crlp file" % path)
        L = _lib.lib()
        out = ffi.new("crl_policy **")
        msg = ffi.new("char[]", 512)
        rc = L.crl_policy_load(os.fsencode(path), out, msg, 512)
        if rc:
            text = ffi.string(msg).decode("utf-8", "replace") or ffi.string(L.crl_strerror(rc)).decode()
            raise CrlError("crl.Policy.load: %s" % text)
        self._p = out[0]
        self.path = path
        self.obs_dim = L.crl_policy_obs_dim(self._p)
        self.act_dim = L.crl_policy_act_dim(self._p)
        self.num_tasks = L.crl_policy_num_tasks(self._p)
        self.task_names = [_s(L.crl_policy_task_name(self._p, i)) for i in range(self.num_tasks)]
        self.task_positions = [L.crl_policy_task_position(self._p, i) for i in range(self.num_tasks)]
        self.task_max_steps = [L.crl_policy_task_max_steps(self._p, i) for i in range(self.num_tasks)]
        self.method = _s(L.crl_policy_method(self._p))
        self.crl_version = _s(L.crl_policy_crl_version(self._p))
        self._batch = 1
        self._rng = ffi.new("crl_rng *")
        self.seed(seed)

    @classmethod
    def load(cls, path, seed=0):
        """Load a .crlp file. FileNotFoundError if it does not exist, CrlError
        with the loader's one line if it is not a valid policy (truncated,
        checksum, newer format, ...). seed seeds the stochastic actions."""
        return cls(path, seed=seed)

    def seed(self, seed):
        """Reseed the generator of stochastic actions (crl_rng_seed)."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 1 << 64:
            raise ValueError("crl.Policy: seed must be an int in [0, 2**64), not %r" % (seed,))
        _lib.lib().crl_rng_seed(self._rng, int(seed))

    def task_index(self, task):
        """The index of task: an index (negative counts from the end) or a task name."""
        if isinstance(task, str):
            idx = [i for i, n in enumerate(self.task_names) if n == task]
            if not idx:
                raise ValueError(
                    "crl.Policy: no task '%s' in this policy (tasks: %s)"
                    % (task, ", ".join(self.task_names))
                )
            if len(idx) > 1:
                raise ValueError(
                    "crl.Policy: task '%s' is at indexes %s of this policy; pass the index"
                    % (task, ", ".join(map(str, idx)))
                )
            return idx[0]
        if isinstance(task, bool) or not isinstance(task, (int, np.integer)):
            raise TypeError("crl.Policy: task must be an index or a task name, not %r" % (task,))
        t = int(task)
        if t < 0:
            t += self.num_tasks
        if not 0 <= t < self.num_tasks:
            raise ValueError(
                "crl.Policy: task %d out of range (the policy has %d tasks)" % (task, self.num_tasks)
            )
        return t

    def act(self, obs, task=0, deterministic=True):
        """Actions for one observation (obs_dim,) or a batch (B, obs_dim), as
        float32 arrays (act_dim,) or (B, act_dim), in [-1, 1]."""
        self._check_open()
        t = self.task_index(task)
        try:
            o = np.ascontiguousarray(obs, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError("crl.Policy.act: obs must be real numbers (%s)" % exc) from None
        if np.asarray(obs).dtype.kind not in "biuf":
            raise ValueError("crl.Policy.act: obs must be real numbers, not dtype %s"
                             % np.asarray(obs).dtype)
        if o.ndim not in (1, 2) or o.shape[-1] != self.obs_dim:
            raise ValueError(
                "crl.Policy.act: obs has shape %s; this policy takes (%d,) or (B, %d)"
                % (o.shape, self.obs_dim, self.obs_dim)
            )
        mode = 0 if deterministic else 1
        L = _lib.lib()
        if o.ndim == 1:
            a = np.empty(self.act_dim, np.float32)
            rc = L.crl_policy_act(
                self._p, t, ffi.from_buffer("float[]", o), ffi.from_buffer("float[]", a), mode,
                self._rng,
            )
        else:
            B = o.shape[0]
            a = np.empty((B, self.act_dim), np.float32)
            if B == 0:
                return a
            if B > MAX_BATCH:
                raise ValueError("crl.Policy.act: batch of %d rows (at most %d)" % (B, MAX_BATCH))
            if B > self._batch:
                if L.crl_policy_set_batch(self._p, B):
                    raise CrlError("crl.Policy.act: %s" % _s(L.crl_policy_error(self._p)))
                self._batch = B
            rc = L.crl_policy_act_batch(
                self._p, t, B, ffi.from_buffer("float[]", o), ffi.from_buffer("float[]", a),
                mode, self._rng,
            )
        if rc:
            raise CrlError("crl.Policy.act: %s" % _s(L.crl_policy_error(self._p)))
        return a

    def episode_start(self):
        """Tell an L2M policy with an observation history that episodes start
        (crl_policy_episode_start); a no-op for other policies."""
        self._check_open()
        _lib.lib().crl_policy_episode_start(self._p)

    def close(self):
        if _lib._lib is not None and getattr(self, "_p", ffi.NULL) != ffi.NULL:
            _lib.lib().crl_policy_free(self._p)
            self._p = ffi.NULL

    @property
    def closed(self):
        return self._p == ffi.NULL

    def __repr__(self):
        return "crl.Policy(%r, method=%r, tasks=%d)" % (self.path, self.method, self.num_tasks)

    def _check_open(self):
        if self._p == ffi.NULL:
            raise ValueError("crl.Policy: closed")
