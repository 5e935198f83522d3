"""Runs from Python: the run store's runs, evaluations, metrics, the
report's Continual World metrics and logged episodes, read through the C
library's typed queries (include/crl/store.h, report.h, episode.h).

Where the library has no typed query, Python's sqlite3 module reads the file
read-only; that is only the list of a run's metric keys (metrics() without
keys). docs/python-runs.md says what each column means.

Functions returning frames need pandas (python3-pandas); each also takes
as_records=True and then returns a list of dicts without it.
"""

import json
import os
import sqlite3

import numpy as np

from . import _lib
from . import env as _env  # noqa: F401  (declares the env and scenario types first)
from ._lib import CrlError, ffi

# override=True: the same declarations may come from another module of the
# package (cffi refuses a second, different-looking declaration otherwise).
_lib.ffi.cdef(
    """
    void free(void *p);

    typedef struct crl_store crl_store;
    int crl_store_open(const char *path, int create, crl_store **out, crl_err *err);
    void crl_store_close(crl_store *s);
    int crl_store_read_begin(crl_store *s);
    void crl_store_read_end(crl_store *s, int began);

    typedef struct {
        int64_t id;
        char created_at[32];
        char status[16];
        char method[32];
        char scenario[64];
        uint64_t seed;
        int64_t last_step;
    } crl_run_info;
    int crl_store_runs(crl_store *s, int (*cb)(const crl_run_info *, void *), void *ctx,
                       crl_err *err);
    int crl_store_run_get(crl_store *s, int64_t run_id, crl_run_info *info,
                          char **config_json, crl_err *err);

    typedef struct {
        int64_t id;
        char created_at[32];
        char name[129];
        char tags[2081];
        char status[16];
        char method[32];
        char scenario[64];
        uint64_t seed;
        int64_t last_step;
        int64_t eval_step;
        int eval_tasks;
        double eval_success;
        double eval_return;
        double wall_s;
    } crl_run_summary;
    typedef struct {
        const char *method;
        const char *const *tags;
        int n_tags;
    } crl_run_filter;
    int crl_store_run_summaries(crl_store *s, const crl_run_filter *f,
                                int (*cb)(const crl_run_summary *, void *), void *ctx,
                                crl_err *err);

    typedef struct {
        int64_t run_id;
        int64_t step;
        int train_task_idx;
        int eval_task_idx;
        int episodes;
        double success_rate;
        double mean_return;
        double det_return;
    } crl_eval_row;
    int crl_store_evals(crl_store *s, int64_t run_id,
                        int (*cb)(const crl_eval_row *, void *), void *ctx, crl_err *err);

    typedef struct {
        int idx;
        char name[128];
        int64_t start_step;
        int64_t end_step;
    } crl_task_row;
    int crl_store_tasks(crl_store *s, int64_t run_id, crl_task_row **tasks, int *n,
                        crl_err *err);
    void crl_store_tasks_free(crl_task_row *tasks);

    typedef struct {
        int64_t step;
        const char *key;
        double value;
    } crl_metric_row;
    int crl_store_metrics(crl_store *s, int64_t run_id, const char *const *keys,
                          int n_keys, int (*cb)(const crl_metric_row *, void *),
                          void *ctx, crl_err *err);

    typedef struct {
        int64_t id;
        int64_t run_id;
        int64_t step;
        int task_idx;
        const char *kind;
        int episode;
        int deterministic;
        uint64_t env_seed;
        int length;
        double ret;
        int success;
        const char *env;
        const char *mujoco_version;
        const char *model_hash;
        const char *modifiers;
        const void *data;
        size_t data_n;
    } crl_episode_row;
    int crl_store_episode_get(crl_store *s, int64_t id,
                              int (*cb)(const crl_episode_row *, void *), void *ctx,
                              crl_err *err);
    int crl_store_episodes(crl_store *s, int64_t run_id, int with_data,
                           int (*cb)(const crl_episode_row *, void *), void *ctx,
                           crl_err *err);

    typedef struct {
        int length, act_dim;
        uint64_t seed;
        char model_hash[17];
        char mujoco_version[17];
        int ended;
        int terminal;
        int truncated;
        double ret;
        float *act;
        float *reward;
        unsigned char *success;
        void *s0, *s1;
        size_t n0, n1;
    } crl_episode_data;
    int crl_episode_decode(const void *blob, size_t n, crl_episode_data *out,
                           crl_err *err);
    void crl_episode_data_free(crl_episode_data *d);
    int crl_episode_restore(crl_env *e, const crl_episode_data *ep, crl_err *err);
    typedef struct {
        int verified;
        int step;
        char what[400];
    } crl_episode_result;
    int crl_episode_verify(const crl_env_spec *spec, const crl_episode_data *ep,
                           crl_episode_result *res, crl_err *err);

    /* crl_env_*, crl_xml_task and crl_scenario: declared by env.py. */
    const crl_scenario *crl_scenario_find(const char *name);

    typedef struct {
        int n_rows;
        void *rows;
        int n_notes;
        char **notes;
        int n_l2m;
        void *l2m;
        int n_csp;
        void *csp;
    } crl_report;
    int crl_report_build(crl_store *store, const char *scenario, crl_report *out,
                         crl_err *err);
    void crl_report_free(crl_report *r);
    int crl_report_format_text(const crl_report *r, int fmt, char **text, crl_err *err);
    """,
    override=True,
)

_REPORT_JSON = 2  # CRL_REPORT_JSON (include/crl/report.h)


def _pandas(what):
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "crl.%s returns a pandas DataFrame: install python3-pandas (Debian) or "
            "pandas, or pass as_records=True for a list of dicts" % what
        ) from None
    return pandas


def _frame(what, records, columns, as_records):
    if as_records:
        return records
    pd = _pandas(what)
    return pd.DataFrame.from_records(records, columns=columns)


def _s(p):
    return ffi.string(p).decode("utf-8", "replace") if p != ffi.NULL else None


def _path(db):
    try:
        db = os.fspath(db)
    except TypeError:
        raise TypeError("crl: db must be a file name, got %s" % type(db).__name__) from None
    if not isinstance(db, str) or not db:
        raise ValueError("crl: db must be a file name")
    if not os.path.exists(db):
        raise FileNotFoundError("crl: database %s does not exist" % db)
    if os.path.isdir(db):
        raise IsADirectoryError("crl: database %s is a directory" % db)
    return db


class _Store:
    """An open store (read only by everything in this module)."""

    def __init__(self, db):
        self.path = _path(db)
        self.err = _lib.new_err()
        p = ffi.new("crl_store **")
        L = _lib.lib()
        _lib.check(L.crl_store_open(self.path.encode(), 0, p, self.err), self.err)
        self.s = p[0]
        self.began = L.crl_store_read_begin(self.s)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.s is not None:
            L = _lib.lib()
            L.crl_store_read_end(self.s, self.began)
            L.crl_store_close(self.s)
            self.s = None

    def check(self, rc):
        return _lib.check(rc, self.err)


def _run_id(run):
    if isinstance(run, bool) or not isinstance(run, (int, np.integer)):
        raise TypeError("crl: a run id is an integer, got %r" % (run,))
    return int(run)


# ---- runs ---------------------------------------------------------------------


def _info_dict(info):
    return {
        "id": int(info.id),
        "created_at": _s(info.created_at),
        "status": _s(info.status),
        "method": _s(info.method),
        "scenario": _s(info.scenario),
        "seed": int(info.seed),
        "last_step": int(info.last_step),
    }


RUN_COLUMNS = [
    "id",
    "created_at",
    "status",
    "method",
    "scenario",
    "seed",
    "last_step",
    "kind",
    "steps",
    "steps_per_task",
    "config",
    "name",
    "tags",
]


def _runs(st):
    L = _lib.lib()
    infos = []

    @ffi.callback("int(const crl_run_info *, void *)")
    def cb(info, ctx):
        infos.append(_info_dict(info))
        return 0

    st.check(L.crl_store_runs(st.s, cb, ffi.NULL, st.err))
    # The labels (schema v7, docs/tracking.md): name and tags in given order.
    labels = {}

    @ffi.callback("int(const crl_run_summary *, void *)")
    def lcb(r, ctx):
        tags = _s(r.tags)
        labels[int(r.id)] = (_s(r.name) or None, tags.split(",") if tags else [])
        return 0

    st.check(L.crl_store_run_summaries(st.s, ffi.NULL, lcb, ffi.NULL, st.err))
    out = []
    for r in infos:
        info = ffi.new("crl_run_info *")
        js = ffi.new("char **")
        st.check(L.crl_store_run_get(st.s, r["id"], info, js, st.err))
        try:
            config = json.loads(_s(js[0]) or "{}")
        finally:
            L.free(js[0])
        scenario_run = bool(config.get("scenario"))
        r["kind"] = "scenario" if scenario_run else "env"
        r["steps"] = config.get("steps") if not scenario_run else None
        r["steps_per_task"] = config.get("steps-per-task") if scenario_run else None
        r["config"] = config
        r["name"], r["tags"] = labels.get(r["id"], (None, []))
        out.append(r)
    return out


def runs(db, as_records=False):
    """The runs of a store, one row per run in id order (crl runs).

    Columns: id, created_at (UTC ISO 8601), status (running, finished,
    failed, interrupted), method (the method's label; "sac" for a single-env
    run), scenario (the scenario, or the env name / MJCF file of a single-env
    run), seed, last_step (highest step in its evals or metrics), kind
    ("scenario" or "env"), steps (single-env runs: env steps planned),
    steps_per_task (scenario runs), config (the stored configuration,
    runs.config_json, as a dict), name (crl train --name; None if none)
    and tags (crl train --tag, a list in the order given).
    """
    with _Store(db) as st:
        recs = _runs(st)
    return _frame("runs", recs, RUN_COLUMNS, as_records)


# ---- tasks and evaluations --------------------------------------------------------


def _tasks(st, run):
    L = _lib.lib()
    pp = ffi.new("crl_task_row **")
    n = ffi.new("int *")
    st.check(L.crl_store_tasks(st.s, run, pp, n, st.err))
    try:
        return [
            {
                "idx": pp[0][i].idx,
                "name": _s(pp[0][i].name),
                "start_step": int(pp[0][i].start_step),
                "end_step": int(pp[0][i].end_step) if pp[0][i].end_step >= 0 else None,
            }
            for i in range(n[0])
        ]
    finally:
        L.crl_store_tasks_free(pp[0])


def run_tasks(db, run, as_records=False):
    """The tasks of a run as they started and ended (table tasks): idx (its
    scenario position), name, start_step, end_step (None while running)."""
    run = _run_id(run)
    with _Store(db) as st:
        recs = _tasks(st, run)
    return _frame("tasks", recs, ["idx", "name", "start_step", "end_step"], as_records)


def _scenario_tasks(name):
    if not name:
        return []
    sc = _lib.lib().crl_scenario_find(name.encode())
    if sc == ffi.NULL:
        return []
    return [_s(sc.tasks[i]) for i in range(sc.n_tasks)]


EVAL_COLUMNS = [
    "run",
    "step",
    "train_task",
    "train_task_name",
    "eval_task",
    "eval_task_name",
    "episodes",
    "success",
    "return",
    "det_return",
]


def _evals(st, run, config):
    L = _lib.lib()
    names = {}
    # A task that has not started yet is named by the run's scenario.
    for i, name in enumerate(_scenario_tasks(config.get("scenario"))):
        names[i] = name
    for t in _tasks(st, run):
        names[t["idx"]] = t["name"]
    rows = []

    @ffi.callback("int(const crl_eval_row *, void *)")
    def cb(r, ctx):
        rows.append(
            {
                "run": int(r.run_id),
                "step": int(r.step),
                "train_task": r.train_task_idx,
                "train_task_name": names.get(r.train_task_idx),
                "eval_task": r.eval_task_idx,
                "eval_task_name": names.get(r.eval_task_idx),
                "episodes": r.episodes,
                "success": r.success_rate,
                "return": r.mean_return,
                "det_return": r.det_return,
            }
        )
        return 0

    st.check(L.crl_store_evals(st.s, run, cb, ffi.NULL, st.err))
    return rows


def _config(st, run):
    L = _lib.lib()
    info = ffi.new("crl_run_info *")
    js = ffi.new("char **")
    st.check(L.crl_store_run_get(st.s, run, info, js, st.err))
    try:
        return json.loads(_s(js[0]) or "{}")
    finally:
        L.free(js[0])


def evals(db, run=None, as_records=False):
    """Evaluations of one run (or of every run), in (run, step, eval task)
    order, with task names joined from the run's tasks.

    Columns: run, step (env steps at the evaluation), train_task /
    train_task_name (the task being trained then), eval_task /
    eval_task_name (the task evaluated, a scenario position), episodes
    (stochastic episodes), success (their success rate), return (their mean
    return), det_return (the deterministic episode's return; NaN if none).
    """
    with _Store(db) as st:
        if run is None:
            ids = [r["id"] for r in _runs(st)]
        else:
            ids = [_run_id(run)]
        recs = []
        for r in ids:
            recs.extend(_evals(st, r, _config(st, r)))
    return _frame("evals", recs, EVAL_COLUMNS, as_records)


# ---- metrics ----------------------------------------------------------------------


def _metric_keys(path, run):
    # No typed query lists a run's keys: read them with sqlite3, read-only.
    uri = "file:%s?mode=ro" % os.path.abspath(path)
    con = sqlite3.connect(uri, uri=True)
    try:
        return [
            k
            for (k,) in con.execute(
                "SELECT DISTINCT key FROM metrics WHERE run_id = ? ORDER BY key", (run,)
            )
        ]
    finally:
        con.close()


def metrics(db, run, keys=None, as_records=False):
    """Logged metrics of a run in step order: columns step, key, value (NaN
    when stored NULL). keys: a key or a list of keys (default: every key the
    run has)."""
    run = _run_id(run)
    if isinstance(keys, str):
        keys = [keys]
    with _Store(db) as st:
        _config(st, run)  # CrlError for a run that does not exist
        if keys is None:
            keys = _metric_keys(st.path, run)
        keys = list(keys)
        for k in keys:
            if not isinstance(k, str):
                raise TypeError("crl.metrics: keys are strings, got %r" % (k,))
        L = _lib.lib()
        recs = []

        @ffi.callback("int(const crl_metric_row *, void *)")
        def cb(r, ctx):
            recs.append({"step": int(r.step), "key": _s(r.key), "value": r.value})
            return 0

        for i in range(0, len(keys), 16):  # CRL_STORE_MAX_KEYS per query
            chunk = [ffi.new("char[]", k.encode()) for k in keys[i : i + 16]]
            arr = ffi.new("const char *[]", chunk)
            st.check(L.crl_store_metrics(st.s, run, arr, len(chunk), cb, ffi.NULL, st.err))
    recs.sort(key=lambda r: r["step"])  # stable: a step's rows keep their order
    return _frame("metrics", recs, ["step", "key", "value"], as_records)


# ---- the report ---------------------------------------------------------------------


def report_json(db, scenario=None):
    """The report of `crl report --json` as a dict (rows, notes, l2m, csp)."""
    if scenario is not None and not isinstance(scenario, str):
        raise TypeError("crl.report: scenario must be a string")
    L = _lib.lib()
    with _Store(db) as st:
        rep = ffi.new("crl_report *")
        text = ffi.new("char **")
        try:
            st.check(
                L.crl_report_build(
                    st.s, scenario.encode() if scenario else ffi.NULL, rep, st.err
                )
            )
            st.check(L.crl_report_format_text(rep, _REPORT_JSON, text, st.err))
            return json.loads(_s(text[0]))
        finally:
            if text[0] != ffi.NULL:
                L.free(text[0])
            L.crl_report_free(rep)


_CI = ("performance", "forgetting", "forward_transfer")


def _flat(row):
    # {mean, lo, hi} objects (null when not a number) become three columns.
    out = {}
    for k, v in row.items():
        if k in _CI and (v is None or isinstance(v, dict)):
            for part in ("mean", "lo", "hi"):
                out["%s_%s" % (k, part)] = _nan(None if v is None else v.get(part))
        else:
            out[k] = _nan(v)
    return out


def _nan(v):
    return float("nan") if v is None else v


def report(db, scenario=None, as_records=False):
    """The Continual World report of the store's finished runs, as `crl
    report` computes it (crl_report_build; the numbers of `crl report
    --format json`, docs/report.md).

    Returns a dict: "rows" (one row per scenario, method and budget:
    performance, forgetting, forward_transfer with their CI bounds, seeds,
    model size, growth, wall time, ...), "l2m" and "csp" (per-run routing and
    decision summaries, empty when none) as DataFrames, and "notes" (the
    report's footnotes, a list of strings). Each {mean, lo, hi} of
    performance, forgetting and forward_transfer becomes three columns
    (performance_mean, performance_lo, performance_hi); null becomes NaN.
    """
    j = report_json(db, scenario)
    out = {"notes": list(j.get("notes", []))}
    for part in ("rows", "l2m", "csp"):
        recs = [_flat(r) for r in j.get(part, [])]
        if as_records:
            out[part] = recs
        else:
            pd = _pandas("report")
            out[part] = pd.DataFrame.from_records(recs)
    return out


# ---- episodes and replay ------------------------------------------------------------


class Episode:
    """A logged episode (table episodes) with its record decoded.

    actions (length x act_dim float32, as given to the env), rewards
    (length float32), successes (length bool), initial_state / final_state
    (the env snapshots, bytes; docs/replay.md), and the row's fields: id,
    run, step, task (scenario position), kind ("eval" or "train"), episode,
    deterministic, seed (the env seed), length, ret (return), success, env
    (task name or MJCF file), mujoco_version, model_hash, modifiers (dict),
    ended, terminal, truncated, blob (the record's bytes)."""

    def __repr__(self):
        return "Episode(id=%d, run=%d, %s, task %d %s, step %d, %d steps, return %.3f)" % (
            self.id,
            self.run,
            self.kind,
            self.task,
            self.env,
            self.step,
            self.length,
            self.ret,
        )


def _decode(blob):
    L = _lib.lib()
    err = _lib.new_err()
    d = ffi.new("crl_episode_data *")
    rc = L.crl_episode_decode(blob, len(blob), d, err)
    if rc != 0:
        L.crl_episode_data_free(d)
        _lib.check(rc, err, "corrupt episode record")
    return d


def _episode(st, eid):
    L = _lib.lib()
    got = []

    @ffi.callback("int(const crl_episode_row *, void *)")
    def cb(r, ctx):
        e = Episode()
        e.id = int(r.id)
        e.run = int(r.run_id)
        e.step = int(r.step)
        e.task = r.task_idx
        e.kind = _s(r.kind)
        e.episode = r.episode
        e.deterministic = bool(r.deterministic)
        e.seed = int(r.env_seed)
        e.length = r.length
        e.ret = r.ret
        e.success = bool(r.success)
        e.env = _s(r.env)
        e.mujoco_version = _s(r.mujoco_version)
        e.model_hash = _s(r.model_hash)
        m = _s(r.modifiers)
        try:
            e.modifiers = json.loads(m) if m else {}
        except ValueError:
            e.modifiers = m
        e.blob = bytes(ffi.buffer(r.data, r.data_n)) if r.data != ffi.NULL else b""
        got.append(e)
        return 1

    st.check(L.crl_store_episode_get(st.s, eid, cb, ffi.NULL, st.err))
    e = got[0]
    d = _decode(e.blob)
    try:
        n, a = d.length, d.act_dim
        e.act_dim = a
        e.actions = np.frombuffer(ffi.buffer(d.act, 4 * n * a), dtype=np.float32).reshape(
            n, a
        ).copy()
        e.rewards = np.frombuffer(ffi.buffer(d.reward, 4 * n), dtype=np.float32).copy()
        e.successes = np.frombuffer(ffi.buffer(d.success, n), dtype=np.uint8).astype(bool)
        e.initial_state = bytes(ffi.buffer(d.s0, d.n0))
        e.final_state = bytes(ffi.buffer(d.s1, d.n1))
        e.ended = bool(d.ended)
        e.terminal = bool(d.terminal)
        e.truncated = bool(d.truncated)
        e.record_return = d.ret
    finally:
        L.crl_episode_data_free(d)
    return e


def episode(db, id):
    """Logged episode `id` (see crl.episodes for the ids of a run)."""
    eid = _run_id(id)
    with _Store(db) as st:
        return _episode(st, eid)


EPISODE_COLUMNS = [
    "id",
    "run",
    "step",
    "task",
    "kind",
    "episode",
    "deterministic",
    "seed",
    "length",
    "return",
    "success",
    "env",
    "bytes",
]


def episodes(db, run, as_records=False):
    """The logged episodes of a run in id order (no data): id, run, step,
    task, kind, episode, deterministic, seed, length, return, success, env,
    bytes (the record's size)."""
    run = _run_id(run)
    L = _lib.lib()
    recs = []

    @ffi.callback("int(const crl_episode_row *, void *)")
    def cb(r, ctx):
        recs.append(
            {
                "id": int(r.id),
                "run": int(r.run_id),
                "step": int(r.step),
                "task": r.task_idx,
                "kind": _s(r.kind),
                "episode": r.episode,
                "deterministic": bool(r.deterministic),
                "seed": int(r.env_seed),
                "length": r.length,
                "return": r.ret,
                "success": bool(r.success),
                "env": _s(r.env),
                "bytes": int(r.data_n),
            }
        )
        return 0

    with _Store(db) as st:
        _config(st, run)  # CrlError for a run that does not exist
        st.check(L.crl_store_episodes(st.s, run, 0, cb, ffi.NULL, st.err))
    return _frame("episodes", recs, EPISODE_COLUMNS, as_records)


class Replay:
    """A logged episode simulated again from its initial state with its
    actions. verified: crl_episode_verify's verdict (every reward and success
    flag, where it ended and the final state bit for bit); differs_at: the
    first step that differs (-1: none, or only the final state); what: what
    differed. rewards, successes, obs: what the re-simulation returned at
    each step (obs: length x obs_dim float32, the observation after each
    step); matches: rewards and successes equal the record's bit for bit."""

    def __repr__(self):
        return "Replay(episode=%d, %d steps, verified=%s%s)" % (
            self.episode.id,
            len(self.rewards),
            self.verified,
            "" if self.verified else ", " + self.what,
        )


def replay(db, id):
    """Simulate logged episode `id` again through the C library (crl replay
    --verify) and return a Replay."""
    ep = episode(db, id)
    L = _lib.lib()
    err = _lib.new_err()
    sp = ffi.new("crl_env_spec **")
    m = ep.modifiers if isinstance(ep.modifiers, dict) else {}
    if "xml" in m:
        # A task from a user's MJCF file, made again from the options its
        # modifiers recorded (as crl replay does).
        if not isinstance(m["xml"], str) or not m["xml"]:
            raise CrlError("crl.replay: episode %d's modifiers name no file" % ep.id)
        o = ffi.new("crl_xml_task *")
        o.reward = 1 if m.get("reward") == "reach" else 0  # crl_xml_reward
        keep = []
        for f in ("body", "site"):
            if isinstance(m.get(f), str):
                keep.append(ffi.new("char[]", m[f].encode()))
                setattr(o, f, keep[-1])
        for k, v in enumerate((m.get("target") or [0, 0, 0])[:3]):
            o.target[k] = float(v or 0)
        o.max_steps = int(m.get("max_steps") or 0)
        o.frame_skip = int(m.get("frame_skip") or 0)
        rc = L.crl_env_spec_create_xml(m["xml"].encode(), o, sp, err)
    else:
        rc = L.crl_env_spec_create(ep.env.encode(), sp, err)
    _lib.check(rc, err, "crl.replay")
    spec = sp[0]
    d = None
    env = ffi.new("crl_env **")
    try:
        d = _decode(ep.blob)
        res = ffi.new("crl_episode_result *")
        _lib.check(L.crl_episode_verify(spec, d, res, err), err, "crl.replay")
        _lib.check(L.crl_env_create(spec, env, err), err, "crl.replay")
        _lib.check(L.crl_episode_restore(env[0], d, err), err, "crl.replay")
        n, na, no = d.length, d.act_dim, L.crl_env_obs_dim(spec)
        if na != L.crl_env_act_dim(spec):
            raise CrlError("crl.replay: the record's actions do not fit %s" % ep.env)
        obs = np.zeros((n, no), dtype=np.float32)
        rew = np.zeros(n, dtype=np.float32)
        suc = np.zeros(n, dtype=bool)
        act = np.ascontiguousarray(ep.actions, dtype=np.float32)
        info = ffi.new("crl_step_info *")
        for t in range(n):
            L.crl_env_step(
                env[0],
                ffi.cast("const float *", ffi.from_buffer(act[t])),
                ffi.cast("float *", ffi.from_buffer(obs[t])),
                info,
            )
            rew[t] = info.reward
            suc[t] = bool(info.success)
        r = Replay()
        r.episode = ep
        r.verified = bool(res.verified)
        r.differs_at = res.step
        r.what = _s(res.what)
        r.rewards = rew
        r.successes = suc
        r.obs = obs
        r.matches = bool(
            np.array_equal(rew.view(np.uint32), ep.rewards.view(np.uint32))
            and np.array_equal(suc, ep.successes)
        )
        return r
    finally:
        if d is not None:
            L.crl_episode_data_free(d)
        if env[0] != ffi.NULL:
            L.crl_env_free(env[0])
        L.crl_env_spec_free(spec)


__all__ = [
    "runs",
    "tasks",
    "evals",
    "metrics",
    "report",
    "report_json",
    "episode",
    "episodes",
    "replay",
    "Episode",
    "Replay",
]

