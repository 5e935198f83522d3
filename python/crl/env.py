"""crl's tasks as Gymnasium-style environments, without gymnasium.

    env = crl.make("push", seed=1)
    obs, info = env.reset()
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

Seeds (docs/python.md): ``reset(seed=s)`` starts the episode exactly as
``crl_env_reset(e, s, obs)`` does in C. ``reset()`` without a seed starts
episode k of the current chain with ``crl_vecenv_episode_seed(base, 0, k)``,
where base is the last seed given to ``reset`` (or ``make``'s seed, 0 if
none) and k counts the episodes started since then: the first is ``base``
itself, so ``make(name, seed=s).reset()`` equals ``reset(seed=s)``, and an
Env walks the same episodes as env 0 of a ``crl.VecEnv`` with that seed.
"""

import difflib
import json
import math
import os
from collections import namedtuple

import numpy as np

from . import _lib
from ._lib import CrlError, ffi

_lib.declare(
    """
    typedef struct {
        const char *name;
        const char *description;
        const char *group;
        int obs_dim, act_dim;
        int has_scripted;
    } crl_env_entry;
    int crl_env_list(const crl_env_entry **list);
    int crl_env_spec_create(const char *name, crl_env_spec **out, crl_err *err);
    void crl_env_spec_free(crl_env_spec *s);
    typedef enum {
        CRL_XML_REWARD_FORWARD = 0,
        CRL_XML_REWARD_REACH = 1
    } crl_xml_reward;
    typedef struct {
        crl_xml_reward reward;
        const char *body;
        const char *site;
        double target[3];
        int max_steps;
        int frame_skip;
    } crl_xml_task;
    int crl_env_spec_create_xml(const char *path, const crl_xml_task *opts,
                                crl_env_spec **out, crl_err *err);
    const char *crl_env_spec_name(const crl_env_spec *s);
    int crl_env_obs_dim(const crl_env_spec *s);
    int crl_env_act_dim(const crl_env_spec *s);
    int crl_env_max_steps(const crl_env_spec *s);
    int crl_env_frame_skip(const crl_env_spec *s);
    const struct mjModel_ *crl_env_model(const crl_env_spec *s);
    int crl_env_create(const crl_env_spec *s, crl_env **out, crl_err *err);
    void crl_env_free(crl_env *e);
    void crl_env_reset(crl_env *e, uint64_t seed, float *obs);
    void crl_env_step(crl_env *e, const float *act, float *obs, crl_step_info *info);
    int crl_env_scripted_action(crl_env *e, float *act);
    int crl_env_steps_taken(const crl_env *e);
    struct mjData_ *crl_env_data(crl_env *e);
    void crl_env_modifiers(const crl_env_spec *s, char *buf, size_t n);

    typedef struct {
        const char *name;
        const char *description;
        int n_tasks;
        const char *const *tasks;
    } crl_scenario;
    int crl_scenario_list(const crl_scenario **list);

    uint64_t crl_vecenv_episode_seed(uint64_t seed, int i, int64_t k);

    typedef struct crl_renderer crl_renderer;
    typedef struct {
        const char *task;
        int64_t step;
        double reward;
        double ret;
        int success;
        int episode;
        const char *text;
    } crl_render_overlay;
    typedef enum {
        CRL_CAMERA_AUTO = 0,
        CRL_CAMERA_FIXED = 1,
        CRL_CAMERA_FREE = 2,
        CRL_CAMERA_TRACK = 3
    } crl_camera_mode;
    typedef struct {
        crl_camera_mode mode;
        int id;
        double lookat[3];
        double distance;
        double azimuth;
        double elevation;
    } crl_camera;
    int crl_render_open(crl_renderer **out, const struct mjModel_ *m, int width,
                        int height, crl_err *err);
    int crl_render_set_camera(crl_renderer *r, const crl_camera *cam, crl_err *err);
    void crl_camera_for_task(const crl_env_spec *s, crl_camera *cam);
    int crl_png_write(const char *path, const unsigned char *rgb, int w, int h,
                      crl_err *err);
    int crl_render_frame(crl_renderer *r, struct mjData_ *d,
                         const crl_render_overlay *ov, unsigned char *rgb, crl_err *err);
    void crl_render_close(crl_renderer *r);
    """
)

_U64 = 1 << 64

TaskInfo = namedtuple("TaskInfo", "name description group obs_dim act_dim has_scripted")
TaskInfo.__doc__ = "A registered task (crl_env_list; `crl tasks` prints the same)."


def _s(p):
    return ffi.string(p).decode("utf-8", "replace") if p != ffi.NULL else None


def tasks():
    """The registered tasks, in listing order, as TaskInfo tuples."""
    lst = ffi.new("crl_env_entry **")
    n = _lib.lib().crl_env_list(lst)
    out = []
    for i in range(n):
        e = lst[0][i]
        out.append(
            TaskInfo(
                _s(e.name), _s(e.description), _s(e.group), e.obs_dim, e.act_dim,
                bool(e.has_scripted),
            )
        )
    return out


def _task_names():
    return [t.name for t in tasks()]


def episode_seed(seed, i, k):
    """crl_vecenv_episode_seed: the seed of episode k of env i under seed."""
    return int(_lib.lib().crl_vecenv_episode_seed(_seed_value(seed, "seed"), int(i), int(k)))


def _seed_value(seed, what):
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError("crl: %s must be an int in [0, 2**64), not %r" % (what, seed))
    seed = int(seed)
    if not 0 <= seed < _U64:
        raise ValueError("crl: %s must be in [0, 2**64), not %d" % (what, seed))
    return seed


# ---- spaces -----------------------------------------------------------------


class Box:
    """A box of float32 vectors: shape, low, high, dtype, sample(), contains()."""

    def __init__(self, low, high, shape, seed=None):
        self.shape = tuple(shape)
        self.dtype = np.dtype(np.float32)
        self.low = np.full(self.shape, low, dtype=np.float32)
        self.high = np.full(self.shape, high, dtype=np.float32)
        self._rng = np.random.default_rng(seed)

    def seed(self, seed=None):
        """Reseed sample()'s generator (numpy's default_rng)."""
        self._rng = np.random.default_rng(seed)

    def sample(self):
        """A uniform draw for bounded dims, a standard normal for unbounded."""
        x = self._rng.standard_normal(self.shape)
        b = np.isfinite(self.low) & np.isfinite(self.high)
        u = self._rng.uniform(size=self.shape)
        x = np.where(b, self.low + u * (self.high - self.low), x)
        return x.astype(np.float32)

    def contains(self, x):
        x = np.asarray(x)
        return x.shape == self.shape and bool(np.all((x >= self.low) & (x <= self.high)))

    def __repr__(self):
        lo, hi = float(self.low.flat[0]), float(self.high.flat[0])
        return "Box(%g, %g, %s, float32)" % (lo, hi, self.shape)


# ---- scenarios --------------------------------------------------------------


class ScenarioTask(namedtuple("ScenarioTask", "scenario position name")):
    """One position of a scenario: make() builds its Env."""

    def make(self, seed=None, **kwargs):
        return make(self.name, seed=seed, **kwargs)

    @property
    def modifiers(self):
        """The task's modifiers as a dict (crl_env_modifiers; {} for none)."""
        sp = _Spec(self.name, None, {}, "crl.scenario")
        try:
            return sp.modifiers
        finally:
            sp.free()


class Scenario:
    """A scenario: its tasks in training order (names may repeat)."""

    def __init__(self, name, description, task_names):
        self.name = name
        self.description = description
        self.tasks = [ScenarioTask(name, i, t) for i, t in enumerate(task_names)]

    def __iter__(self):
        return iter(self.tasks)

    def __len__(self):
        return len(self.tasks)

    def __getitem__(self, i):
        return self.tasks[i]

    def __repr__(self):
        return "Scenario(%r, %d tasks)" % (self.name, len(self.tasks))


def scenarios():
    """Every scenario (crl_scenario_list), in listing order."""
    lst = ffi.new("crl_scenario **")
    n = _lib.lib().crl_scenario_list(lst)
    out = []
    for i in range(n):
        s = lst[0][i]
        out.append(
            Scenario(_s(s.name), _s(s.description), [_s(s.tasks[k]) for k in range(s.n_tasks)])
        )
    return out


def scenario(name):
    """The named scenario; iterating it yields its tasks (ScenarioTask) in order."""
    if not isinstance(name, str):
        raise TypeError("crl.scenario: name must be a str, not %r" % (name,))
    all_ = scenarios()
    for s in all_:
        if s.name == name:
            return s
    raise ValueError(
        "crl.scenario: unknown scenario '%s' (known: %s)"
        % (name, ", ".join(s.name for s in all_))
    )


# ---- making specs -----------------------------------------------------------

_XML_KEYS = ("reward", "body", "site", "target", "max_steps", "frame_skip")


class _Spec:
    """Owns one crl_env_spec (shared by an Env or a VecEnv's instances)."""

    def __init__(self, name, xml, opts, who):
        L = _lib.lib()
        self.ptr = ffi.NULL
        self._keep = []
        out = ffi.new("crl_env_spec **")
        err = _lib.new_err()
        if isinstance(name, ScenarioTask):
            name = name.name
        if xml is None and isinstance(name, os.PathLike):
            xml, name = name, None
        if xml is None and isinstance(name, str) and name.endswith(".xml"):
            xml, name = name, None
        if xml is not None:
            if name is not None:
                raise TypeError("%s: give a task name or xml=, not both" % who)
            if not isinstance(xml, (str, os.PathLike)):
                raise TypeError("%s: xml must be a path, not %r" % (who, xml))
            xml = os.fspath(xml)
            if not os.path.isfile(xml):
                raise FileNotFoundError("%s: no such MJCF file: %s" % (who, xml))
            xt = self._xml_opts(opts, who)
            _lib.check(
                L.crl_env_spec_create_xml(xml.encode(), xt, out, err), err, who
            )
        else:
            if opts:
                raise TypeError(
                    "%s: options %s apply only to an MJCF file (xml=...); a task's "
                    "modifiers come with its name (e.g. 'halfcheetah-moon')"
                    % (who, ", ".join(sorted(opts)))
                )
            if not isinstance(name, str):
                raise TypeError("%s: task name must be a str, not %r" % (who, name))
            names = _task_names()
            if name not in names:
                close = difflib.get_close_matches(name, names, 3)
                raise ValueError(
                    "%s: unknown task '%s'%s (crl.tasks() lists them)"
                    % (who, name, "; did you mean %s?" % " or ".join(close) if close else "")
                )
            _lib.check(L.crl_env_spec_create(name.encode(), out, err), err, who)
        self.ptr = out[0]
        self.name = _s(L.crl_env_spec_name(self.ptr))
        self.obs_dim = L.crl_env_obs_dim(self.ptr)
        self.act_dim = L.crl_env_act_dim(self.ptr)
        self.max_steps = L.crl_env_max_steps(self.ptr)
        self.frame_skip = L.crl_env_frame_skip(self.ptr)
        buf = ffi.new("char[]", 4096)
        L.crl_env_modifiers(self.ptr, buf, 4096)
        try:
            self.modifiers = json.loads(ffi.string(buf).decode())
        except ValueError:
            self.modifiers = ffi.string(buf).decode()

    def _xml_opts(self, opts, who):
        bad = sorted(set(opts) - set(_XML_KEYS))
        if bad:
            raise TypeError(
                "%s: unknown option %s (MJCF options: %s)" % (who, ", ".join(bad), ", ".join(_XML_KEYS))
            )
        xt = ffi.new("crl_xml_task *")
        reward = opts.get("reward", "forward")
        if reward not in ("forward", "reach"):
            raise ValueError("%s: reward must be 'forward' or 'reach', not %r" % (who, reward))
        xt.reward = 0 if reward == "forward" else 1
        for key in ("body", "site"):
            v = opts.get(key)
            if v is not None:
                if not isinstance(v, str):
                    raise TypeError("%s: %s must be a str" % (who, key))
                c = ffi.new("char[]", v.encode())
                self._keep.append(c)
                setattr(xt, key, c)
        if "target" in opts:
            t = np.asarray(opts["target"], dtype=np.float64)
            if t.shape != (3,) or not np.all(np.isfinite(t)):
                raise ValueError("%s: target must be 3 finite numbers (x, y, z)" % who)
            for i in range(3):
                xt.target[i] = float(t[i])
        for key in ("max_steps", "frame_skip"):
            v = opts.get(key, 0)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= 10**9:
                raise ValueError("%s: %s must be an int >= 0 (0: default)" % (who, key))
            setattr(xt, key, int(v))
        return xt

    def free(self):
        if self.ptr != ffi.NULL:
            _lib.lib().crl_env_spec_free(self.ptr)
            self.ptr = ffi.NULL


# ---- the environment --------------------------------------------------------


class Env(_lib.Owned):
    """One instance of a crl task (see crl.make)."""

    metadata = {"render_modes": ["rgb_array"]}
    render_mode = "rgb_array"

    def __init__(self, name=None, seed=None, xml=None, render_size=(480, 480), camera=None,
                 **options):
        self._e = ffi.NULL
        self._spec = None
        self._renderer = ffi.NULL
        self._spec = _Spec(name, xml, options, "crl.make")
        L = _lib.lib()
        err = _lib.new_err()
        out = ffi.new("crl_env **")
        rc = L.crl_env_create(self._spec.ptr, out, err)
        if rc:
            self._spec.free()
            _lib.check(rc, err, "crl.make")
        self._e = out[0]
        sp = self._spec
        self.name = sp.name
        self.modifiers = sp.modifiers
        self.max_episode_steps = sp.max_steps
        self.frame_skip = sp.frame_skip
        self.observation_space = Box(-np.inf, np.inf, (sp.obs_dim,), seed)
        self.action_space = Box(-1.0, 1.0, (sp.act_dim,), seed)
        self._base = _seed_value(0 if seed is None else seed, "seed")
        self._k = 0
        self._ad = sp.act_dim
        self._ashape = (sp.act_dim,)
        self._abuf = ffi.new("float[]", sp.act_dim)
        self._aview = np.frombuffer(ffi.buffer(self._abuf), dtype=np.float32)
        self._obuf = ffi.new("float[]", sp.obs_dim)
        self._oview = np.frombuffer(ffi.buffer(self._obuf), dtype=np.float32)
        self._info = ffi.new("crl_step_info *")
        self._running = False
        self._step_fn = L.crl_env_step
        rs = tuple(int(x) for x in render_size)
        if len(rs) != 2 or not all(16 <= x <= 4096 for x in rs):
            self.close()
            raise ValueError("crl.make: render_size must be (width, height) in [16, 4096]")
        self._render_size = rs
        self._camera = camera

    # -- Gymnasium API --

    def reset(self, seed=None, options=None):
        """Start an episode. Returns (obs, info); info has the episode's seed."""
        self._check_open()
        if seed is not None:
            self._base = _seed_value(seed, "reset seed")
            self._k = 0
        ep_seed = int(_lib.lib().crl_vecenv_episode_seed(self._base, 0, self._k))
        self._k += 1
        _lib.lib().crl_env_reset(self._e, ep_seed, self._obuf)
        self._running = True
        return self._oview.copy(), {"seed": ep_seed, "episode": self._k - 1}

    def step(self, action):
        """One env step: (obs, reward, terminated, truncated, info).

        action: act_dim finite numbers (any real dtype; converted to float32
        and clipped to [-1, 1] as crl_env_step does). A wrong shape, a
        non-number or a NaN/inf raises ValueError; so does stepping an episode
        that ended (call reset())."""
        if not self._running:
            self._not_running()
        if type(action) is np.ndarray and action.shape == self._ashape:
            try:
                self._aview[...] = action
            except (TypeError, ValueError):
                self._bad_action(action)
        else:
            self._set_action_slow(action)
        # NaN and +-inf make the float64 sum of the float32 entries non-finite
        # (finite entries cannot overflow it); cheaper than numpy's reductions.
        if not math.isfinite(sum(self._aview.tolist())):
            self._bad_action(action)
        info = self._info
        self._step_fn(self._e, self._abuf, self._obuf, info)
        reward = info.reward
        terminated = info.terminal != 0
        truncated = info.truncated != 0
        if terminated or truncated:
            self._running = False
        return self._oview.copy(), reward, terminated, truncated, {"success": info.success != 0}

    def render(self):
        """The current state as an HxWx3 uint8 RGB array (headless OSMesa)."""
        self._check_open()
        L = _lib.lib()
        err = _lib.new_err()
        w, h = self._render_size
        if self._renderer == ffi.NULL:
            out = ffi.new("crl_renderer **")
            m = L.crl_env_model(self._spec.ptr)
            _lib.check(L.crl_render_open(out, m, w, h, err), err, "crl render")
            self._renderer = out[0]
            cam = ffi.new("crl_camera *")
            if self._camera is not None:
                if isinstance(self._camera, bool) or not isinstance(self._camera, (int, np.integer)):
                    raise TypeError("crl render: camera must be a fixed camera index (int)")
                cam.mode = 1
                cam.id = int(self._camera)
            else:
                L.crl_camera_for_task(self._spec.ptr, cam)  # the task's own framing
            _lib.check(L.crl_render_set_camera(self._renderer, cam, err), err, "crl render")
        rgb = np.empty((h, w, 3), dtype=np.uint8)
        d = L.crl_env_data(self._e)
        _lib.check(
            L.crl_render_frame(self._renderer, d, ffi.NULL, ffi.from_buffer("unsigned char[]", rgb), err),
            err, "crl render",
        )
        return rgb

    def close(self):
        """Free the C objects (idempotent). Any later call raises ValueError."""
        L = _lib.lib() if _lib._lib is not None else None
        if L is None:
            return
        if getattr(self, "_renderer", ffi.NULL) != ffi.NULL:
            L.crl_render_close(self._renderer)
            self._renderer = ffi.NULL
        if getattr(self, "_e", ffi.NULL) != ffi.NULL:
            L.crl_env_free(self._e)
            self._e = ffi.NULL
        if getattr(self, "_spec", None) is not None:
            self._spec.free()
        self._running = False

    # -- extras --

    def scripted_action(self):
        """The task's scripted (privileged) controller's action, or CrlError."""
        self._check_open()
        act = np.empty(self._ad, dtype=np.float32)
        rc = _lib.lib().crl_env_scripted_action(self._e, ffi.from_buffer("float[]", act))
        if rc:
            raise CrlError("crl: task '%s' has no scripted policy" % self.name)
        return act

    @property
    def episode_steps(self):
        self._check_open()
        return _lib.lib().crl_env_steps_taken(self._e)

    @property
    def unwrapped(self):
        return self

    @property
    def closed(self):
        return self._e == ffi.NULL

    def __repr__(self):
        return "crl.Env(%r%s)" % (self.name, ", closed" if self.closed else "")

    # -- slow paths --

    def _check_open(self):
        if self._e == ffi.NULL:
            raise ValueError("crl: the env is closed")

    def _not_running(self):
        self._check_open()
        raise ValueError(
            "crl: env.step() needs an episode: call env.reset() first (after make, "
            "and after terminated or truncated)"
        )

    def _bad_action(self, action):
        a = np.asarray(action)
        if a.dtype.kind not in "biuf":
            raise ValueError(
                "crl: action must be %d real numbers, not dtype %s" % (self._ad, a.dtype)
            )
        raise ValueError(
            "crl: action has NaN or infinite entries: %s"
            % np.array2string(a.astype(np.float64).ravel(), precision=4, threshold=12)
        )

    def _set_action_slow(self, action):
        try:
            a = np.asarray(action)
        except Exception as exc:  # ragged lists, odd objects
            raise ValueError("crl: action must be %d real numbers (%s)" % (self._ad, exc)) from None
        if a.dtype.kind not in "biuf":
            self._bad_action(a)
        if a.shape != self._ashape:
            raise ValueError(
                "crl: action has shape %s; task '%s' takes shape (%d,)"
                % (a.shape, self.name, self._ad)
            )
        self._aview[...] = a


def make(name=None, seed=None, **kwargs):
    """An Env of a registered task, a scenario task, or an MJCF file.

    make("push", seed=1)
    make("halfcheetah-moon")                    # modifiers come with the name
    make(crl.scenario("cw10")[3])               # a scenario's task
    make("my.xml", reward="forward", body="torso", max_steps=500)
    make(xml="my.xml", reward="reach", site="tip", target=(0.3, 0, 0.1))

    MJCF options are `crl train --env-xml`'s: reward, body, site, target,
    max_steps, frame_skip. Also render_size=(w, h) and camera=INDEX for
    render()."""
    return Env(name, seed=seed, **kwargs)


def save_png(path, rgb):
    """Write an HxWx3 uint8 RGB array (e.g. Env.render()) as a PNG file,
    through crl's own writer (atomic: a failure leaves no file)."""
    a = np.ascontiguousarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError("crl.save_png: rgb must be an HxWx3 uint8 array, got %s %s"
                         % (a.dtype, a.shape))
    err = _lib.new_err()
    _lib.check(
        _lib.lib().crl_png_write(os.fsencode(path), ffi.from_buffer("unsigned char[]", a),
                                 a.shape[1], a.shape[0], err),
        err, "crl.save_png",
    )
