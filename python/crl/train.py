"""Training from Python: crl.train(db, **options) runs what `crl train` runs.

The options are `crl train`'s flags with '-' spelled '_' (env="pendulum",
steps=2000, scenario="t1", method="ewc", steps_per_task=..., seed=...). Each
one sets a key of the library's run configuration (crl_run_config_set, the
keys of runs.config_json in docs/schema.md); the library then validates the
configuration and creates and trains the run through the same function the
command calls (crl_run_train, agents/train.c). docs/python-runs.md.
"""

import math
import os
import signal
import sys
import threading

from . import _lib
from ._lib import CrlError, ffi

_lib.ffi.cdef(
    """
    typedef struct crl_run_config crl_run_config;
    typedef struct {
        int task, n_tasks;
        const char *task_name;
        int64_t step, total;
        double steps_per_s;
        double recent_return;
        double recent_success;
        double eta_s;
        int64_t updates;
        int has_success;
    } crl_progress;
    typedef struct {
        void (*progress)(const crl_progress *p, void *ctx);
        void (*started)(int64_t run_id, int resumed, const crl_run_config *c, void *ctx);
        void *ctx;
        int *stop;
        void *note; /* crl_note_fn: left NULL (no evaluation lines) */
    } crl_run_hooks;
    size_t crl_run_config_sizeof(void);
    void crl_run_config_default(crl_run_config *c);
    void crl_run_config_free(crl_run_config *c);
    int crl_run_config_set_labels(crl_run_config *c, const char *name,
                                  const char *const *tags, int n_tags, crl_err *err);
    int crl_run_config_set(crl_run_config *c, const char *key, const char *value,
                           crl_err *err);
    int crl_run_config_check_given(const crl_run_config *c, const char *const *keys,
                                   int n, int continual, int style, crl_err *err);
    int crl_run_train(const char *db, crl_run_config *c, int64_t resume,
                      const crl_run_hooks *hooks, int64_t *run_id, crl_err *err);
    """,
    override=True,
)

# `crl train`'s flags that are not keys of the stored configuration.
_NOT_STORED = {"db", "quiet", "resume", "updates_per_task"}

# Flags of one kind of run given to the other kind, of another method, or in
# conflict are refused by the library (crl_run_config_check_given), as
# `crl train` refuses them. Flags of an online run given to an offline one:
_ONLINE_ONLY = (
    "steps-per-task start-steps update-after update-every buffer-size "
    "log-train-episodes env-xml steps env"
).split()


class Progress:
    """One progress report of a training run (crl_progress)."""

    __slots__ = (
        "task",
        "n_tasks",
        "task_name",
        "step",
        "total",
        "steps_per_s",
        "recent_return",
        "recent_success",
        "eta_s",
        "updates",
        "has_success",
        "run",
    )

    def __init__(self, p, run):
        self.task = p.task  # 0-based position of the task being trained
        self.n_tasks = p.n_tasks
        self.task_name = ffi.string(p.task_name).decode() if p.task_name else ""
        self.step = p.step  # env steps done (of this task in a scenario run)
        self.total = p.total  # env steps planned
        self.steps_per_s = p.steps_per_s
        self.recent_return = p.recent_return  # NaN before the first episode
        self.recent_success = p.recent_success
        self.eta_s = p.eta_s  # NaN if unknown
        self.updates = p.updates
        self.has_success = bool(p.has_success)  # False for locomotion: no success rate
        self.run = run

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __repr__(self):
        return "Progress(%s)" % ", ".join("%s=%r" % kv for kv in self.as_dict().items())


def _fmt_eta(s):
    if not math.isfinite(s) or s < 0 or s > 1e9:
        return "--"
    t = int(round(s))
    if t < 120:
        return "%ds" % t
    if t < 7200:
        return "%dm%02ds" % (t // 60, t % 60)
    return "%dh%02dm" % (t // 3600, t // 60 % 60)


def print_progress(p, stream=None):
    """The progress line `crl train` prints (progress=True)."""
    stream = stream or sys.stderr
    ret = "return --"
    if math.isfinite(p.recent_return) and p.has_success:
        ret = "return %.1f, success %.2f" % (p.recent_return, p.recent_success)
    elif math.isfinite(p.recent_return):
        ret = "return %.1f" % p.recent_return  # locomotion: no success notion
    tty = hasattr(stream, "isatty") and stream.isatty()
    final = p.step == p.total
    line = "task %d %s (%d/%d) | step %d/%d | %.0f steps/s | %s | ETA %s" % (
        p.task,
        p.task_name,
        p.task + 1,
        p.n_tasks,
        p.step,
        p.total,
        p.steps_per_s,
        ret,
        _fmt_eta(p.eta_s),
    )
    if tty:
        stream.write("\r\033[K" + line + ("\n" if final else ""))
    else:
        stream.write(line + "\n")
    stream.flush()


def _text(name, value):
    """An option's value as the text the decoder reads."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("crl.train: %s must be finite, got %r" % (name, value))
        return repr(value)
    if isinstance(value, str):
        if "\0" in value:
            raise ValueError("crl.train: %s contains a NUL character" % name)
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    # numpy scalars
    if hasattr(value, "item") and callable(value.item):
        return _text(name, value.item())
    raise TypeError(
        "crl.train: %s must be a number or a string, got %s" % (name, type(value).__name__)
    )


def train(db, progress=None, resume=None, **options):
    """Train a run as `crl train --db DB ...` does and return its id.

    db: the run store (created if missing). progress: None (silent), True
    (print `crl train`'s progress line to stderr) or a callable taking a
    Progress. resume: continue an interrupted run (its stored configuration;
    no other options). options: `crl train`'s flags with '_' for '-'
    (task or env, steps, scenario, method, steps_per_task, seed, eval_every, lr,
    ...); flags that are switches take True; name (a string) and tags (a
    list of strings) label the new run as --name and --tag do. A method
    that trains one task per run
    (method="single" without single_task) makes one run per scenario
    position and returns the list of their ids.

    Raises ValueError (unknown option, bad value, unknown task, scenario or
    method) before anything is written, KeyboardInterrupt after Ctrl-C (the
    run is left interrupted and resumable: crl.train(db, resume=id)), and
    CrlError when training fails.
    """
    db = os.fspath(db)
    if not isinstance(db, str) or not db:
        raise ValueError("crl.train: db must be a file name")
    if progress is not None and progress is not True and progress is not False:
        if not callable(progress):
            raise TypeError("crl.train: progress must be None, True or a callable")
    if options.pop("quiet", False):
        progress = None
    updates = options.pop("updates_per_task", None)
    if "task" in options:  # `crl train --task` (env is its stored key and alias)
        if "env" in options:
            raise ValueError("crl.train: task and env are the same option; give one")
        options["env"] = options.pop("task")
    # The new run's labels (crl train --name/--tag, docs/tracking.md): not
    # configuration keys.
    run_name = options.pop("name", None)
    tags = options.pop("tags", None)
    if "tag" in options:  # `crl train --tag`, spelled as the flag
        if tags is not None:
            raise ValueError("crl.train: tag and tags are the same option; give one")
        tags = options.pop("tag")
    if run_name is not None and not isinstance(run_name, str):
        raise TypeError("crl.train: name must be a string, got %s" % type(run_name).__name__)
    if isinstance(tags, str):
        tags = [tags]
    if tags is not None:
        tags = list(tags)
        if not all(isinstance(t, str) for t in tags):
            raise TypeError("crl.train: tags must be a list of strings")
    if resume is not None and (run_name is not None or tags):
        raise ValueError("crl.train: resume keeps the run's name and tags (got %s)"
                         % ("name" if run_name is not None else "tags"))
    keys = {}
    for name, value in options.items():
        if name in _NOT_STORED:
            raise ValueError("crl.train: %s is not an option here" % name)
        keys[name.replace("_", "-")] = value
    resume_id = 0
    if resume is not None:
        if isinstance(resume, bool) or not isinstance(resume, int) or resume < 1:
            raise ValueError("crl.train: resume must be a run id (>= 1), got %r" % (resume,))
        if keys:
            raise ValueError(
                "crl.train: resume continues run %d with its stored configuration; "
                "no other options (got %s)"
                % (resume, ", ".join(k.replace("-", "_") for k in keys))
            )
        if not os.path.exists(db):
            raise FileNotFoundError("crl.train: database %s does not exist" % db)
        resume_id = resume

    offline = keys.get("offline")
    if offline:
        bad = [k for k in keys if k in _ONLINE_ONLY]
        if bad:
            raise ValueError(
                "crl.train: %s does not apply to an offline run%s"
                % (
                    bad[0].replace("-", "_"),
                    "; use updates_per_task" if bad[0] == "steps-per-task" else "",
                )
            )
        if "scenario" not in keys:
            raise ValueError(
                "crl.train: offline needs scenario=NAME (one task: method='single', "
                "single_task=POS)"
            )
        keys["offline"] = os.path.realpath(os.fspath(offline))
        keys["steps-per-task"] = 100000 if updates is None else updates
    else:
        if updates is not None:
            raise ValueError("crl.train: updates_per_task applies only with offline=DATA.db")
        if "bc-loss" in keys:
            raise ValueError("crl.train: bc_loss applies only with offline=DATA.db")
    L = _lib.lib()
    err = _lib.new_err()
    buf = ffi.new("char[]", L.crl_run_config_sizeof())
    cfg = ffi.cast("crl_run_config *", buf)
    L.crl_run_config_default(cfg)
    try:
        # As `crl train`: no scenario unless one is given.
        if "scenario" not in keys:
            _lib.check(L.crl_run_config_set(cfg, b"scenario", b"", err), err)
        for k, v in keys.items():
            text = _text(k.replace("-", "_"), v)
            if L.crl_run_config_set(cfg, k.encode(), text.encode(), err) != 0:
                msg = ffi.string(err.msg).decode("utf-8", "replace")
                if msg.startswith("unknown option"):
                    raise ValueError(
                        "crl.train: unknown option %s (the options are crl train's "
                        "flags with '_' for '-')" % k.replace("-", "_")
                    )
                raise ValueError("crl.train: " + msg.replace(k, k.replace("-", "_"), 1))
        # Kept alive until the run is created (the config points at them).
        label_name = ffi.new("char[]", run_name.encode()) if run_name is not None else ffi.NULL
        label_tags = [ffi.new("char[]", t.encode()) for t in tags or []]
        label_arr = ffi.new("const char *[]", label_tags) if label_tags else ffi.NULL
        if L.crl_run_config_set_labels(cfg, label_name, label_arr, len(label_tags), err):
            raise ValueError("crl.train: " + ffi.string(err.msg).decode("utf-8", "replace"))
        if not resume_id:
            names = [ffi.new("char[]", k.encode()) for k in keys]
            arr = ffi.new("const char *[]", names) if names else ffi.NULL
            if L.crl_run_config_check_given(cfg, arr, len(names), "scenario" in keys, 1, err):
                raise ValueError("crl.train: " + ffi.string(err.msg).decode("utf-8", "replace"))
        return _run(L, db, cfg, resume_id, progress)
    finally:
        L.crl_run_config_free(cfg)


def _run(L, db, cfg, resume_id, progress):
    err = _lib.new_err()
    stop = ffi.new("int *", 0)
    run_ids = []
    failure = []
    interrupted = []

    @ffi.callback("void(const crl_progress *, void *)")
    def on_progress(p, ctx):
        try:
            if progress is True:
                print_progress(Progress(p, run_ids[-1] if run_ids else 0))
            elif callable(progress):
                progress(Progress(p, run_ids[-1] if run_ids else 0))
        except BaseException as e:  # noqa: B902 - re-raised after the run stops
            if isinstance(e, KeyboardInterrupt):
                interrupted.append(True)
            else:
                failure.append(e)
            stop[0] = 1

    @ffi.callback("void(int64_t, int, const crl_run_config *, void *)")
    def on_started(run_id, resumed, c, ctx):
        run_ids.append(int(run_id))

    hooks = ffi.new("crl_run_hooks *")
    hooks.progress = on_progress
    hooks.started = on_started
    hooks.ctx = ffi.NULL
    hooks.stop = stop
    run_id = ffi.new("int64_t *")

    # Ctrl-C sets the runners' stop flag (seen within about a second, at the
    # next progress call): the run checkpoints, is marked interrupted and
    # stays resumable; KeyboardInterrupt is raised after.
    old = None
    if threading.current_thread() is threading.main_thread():

        def on_sigint(signum, frame):
            interrupted.append(True)
            stop[0] = 1

        old = signal.signal(signal.SIGINT, on_sigint)
    try:
        rc = L.crl_run_train(db.encode(), cfg, resume_id, hooks, run_id, err)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    msg = ffi.string(err.msg).decode("utf-8", "replace")
    last = int(run_id[0])
    if failure:
        raise failure[0]
    if (interrupted or rc == CRL_EINTR) and not last:
        raise KeyboardInterrupt("crl.train: interrupted before a run was created")
    if interrupted and rc == 0:
        # The stop came after the last step: nothing is left to resume.
        raise KeyboardInterrupt(
            "crl.train: run %d finished before the interrupt took effect" % last
        )
    if interrupted or rc == CRL_EINTR:
        raise KeyboardInterrupt(
            "crl.train: run %d interrupted; continue it with crl.train(%r, resume=%d)"
            % (last, db, last)
        )
    if rc != 0:
        if not last:
            # Nothing trained: a bad configuration, task or run id.
            raise ValueError("crl.train: " + msg) if _is_usage(rc) else CrlError(
                "crl.train: " + msg
            )
        raise CrlError("crl.train: " + msg)
    if len(run_ids) > 1:
        return run_ids
    return last


# include/crl/base.h's codes that crl.train tells apart.
CRL_EINVAL = -1
CRL_ENOTFOUND = -6
CRL_EINTR = -9


def _is_usage(rc):
    return rc in (CRL_EINVAL, CRL_ENOTFOUND)
