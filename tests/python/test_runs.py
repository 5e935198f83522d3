"""crl.runs, crl.evals, crl.metrics, crl.report, crl.episode and crl.replay
against independent numbers: SQL on the same file, `crl report --format
json`, the episode blob decoded here with struct (docs/replay.md) and
`crl replay --verify`."""

import json
import math
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from _runs_fixtures import REPO, counts, run_cli, sql, store_db  # noqa: F401

import crl

pd = pytest.importorskip("pandas")


def test_runs_equal_sql(store_db):
    df = crl.runs(store_db)
    rows = sql(
        store_db, "SELECT id, created_at, status, method, scenario, seed, config_json "
        "FROM runs ORDER BY id"
    )
    assert len(df) == len(rows) == 2
    for (_, r), (i, created, status, method, scenario, seed, cj) in zip(df.iterrows(), rows):
        assert r["id"] == i
        assert r["created_at"] == created
        assert r["status"] == status == "finished"
        assert r["method"] == method
        assert r["scenario"] == scenario
        assert r["seed"] == seed
        assert r["config"] == json.loads(cj)
    assert list(df["method"]) == ["sac", "ewc"]
    assert list(df["kind"]) == ["env", "scenario"]
    assert df["steps"][0] == 400 and df["steps_per_task"][1] == 200
    # last_step: the highest step of the run's evals and metrics
    for r in df.itertuples():
        hi = sql(
            store_db,
            "SELECT MAX(s) FROM (SELECT step s FROM evals WHERE run_id = ?1 "
            "UNION ALL SELECT step FROM metrics WHERE run_id = ?1)",
            r.id,
        )[0][0]
        assert r.last_step == hi
    recs = crl.runs(store_db, as_records=True)
    keys = ["id", "created_at", "status", "method", "scenario", "seed", "config"]
    assert [[r[k] for k in keys] for r in recs] == df[keys].values.tolist()
    assert recs[0]["steps_per_task"] is None and recs[1]["steps"] is None


def test_runs_have_the_names_and_tags_crl_train_stored(tmp_path):
    """crl train --name/--tag (docs/tracking.md) read back by crl.runs; a run
    without them has name None and no tags."""
    from _runs_fixtures import ENV_RUN, TINY

    db = str(tmp_path / "labels.db")
    run_cli("train", "--db", db, *ENV_RUN, *TINY, "--quiet", "--name", "first",
            "--tag", "b", "--tag", "a")
    run_cli("train", "--db", db, *ENV_RUN, *TINY, "--quiet")
    recs = crl.runs(db, as_records=True)
    assert [(r["name"], r["tags"]) for r in recs] == [("first", ["b", "a"]), (None, [])]
    assert sql(db, "SELECT name FROM runs ORDER BY id") == [("first",), (None,)]


def test_train_labels_a_run_as_the_cli_does(tmp_path):
    """crl.train(name=..., tags=[...]) stores what --name/--tag store; bad
    labels raise before anything is written."""
    db = str(tmp_path / "labels.db")
    with pytest.raises(ValueError, match="given twice"):
        crl.train(db, env="pendulum", steps=200, tags=["a", "a"])
    with pytest.raises(ValueError, match="tag"):
        crl.train(db, env="pendulum", steps=200, tags=["a b"])
    assert not os.path.exists(db)
    rid = crl.train(db, env="pendulum", steps=200, eval_every=200, hidden=16, layers=1,
                    start_steps=100, update_after=100, eval_episodes=1, threads=1,
                    name="py", tags=["x", "y"])
    recs = crl.runs(db, as_records=True)
    assert [(r["id"], r["name"], r["tags"]) for r in recs] == [(rid, "py", ["x", "y"])]
    with pytest.raises(ValueError, match="resume"):
        crl.train(db, resume=rid, name="again")


def test_evals_equal_sql_with_names_joined(store_db):
    all_ = crl.evals(store_db)
    assert len(all_) == sql(store_db, "SELECT COUNT(*) FROM evals")[0][0]
    for run in (1, 2):
        df = crl.evals(store_db, run)
        want = sql(
            store_db,
            "SELECT e.step, e.train_task_idx, tt.name, e.eval_task_idx, t.name, e.episodes, "
            "e.success_rate, e.mean_return, e.det_return FROM evals e "
            "JOIN tasks t ON t.run_id = e.run_id AND t.idx = e.eval_task_idx "
            "JOIN tasks tt ON tt.run_id = e.run_id AND tt.idx = e.train_task_idx "
            "WHERE e.run_id = ? ORDER BY e.step, e.eval_task_idx",
            run,
        )
        n = sql(store_db, "SELECT COUNT(*) FROM evals WHERE run_id = ?", run)[0][0]
        assert len(df) == len(want) == n > 0
        cols = ["step", "train_task", "train_task_name", "eval_task", "eval_task_name"]
        cols += ["episodes", "success", "return", "det_return"]
        got = [tuple(r[c] for c in cols) for r in df.to_dict("records")]
        assert got == [tuple(w) for w in want]
        assert set(df["run"]) == {run}
    # The scenario run evaluates all three tasks of t1 at every evaluation.
    df = crl.evals(store_db, 2)
    assert list(df["eval_task_name"][:3]) == ["push", "window-close", "hammer"]
    assert crl.evals(store_db, 2, as_records=True) == df.to_dict("records")


def test_metrics_equal_sql(store_db):
    for run in (1, 2):
        df = crl.metrics(store_db, run)
        n = sql(store_db, "SELECT COUNT(*) FROM metrics WHERE run_id = ?", run)[0][0]
        assert len(df) == n > 0
        want = sorted(
            sql(store_db, "SELECT step, key, value FROM metrics WHERE run_id = ?", run)
        )
        got = sorted((r.step, r.key, r.value) for r in df.itertuples())
        assert got == [tuple(w) for w in want]
    one = crl.metrics(store_db, 2, keys="wall_time_s")
    n = sql(
        store_db, "SELECT COUNT(*) FROM metrics WHERE run_id = 2 AND key = 'wall_time_s'"
    )[0][0]
    assert len(one) == n > 0 and set(one["key"]) == {"wall_time_s"}
    assert list(one["step"]) == sorted(one["step"])


def test_report_equals_cli_json(store_db):
    p = run_cli("report", "--db", store_db, "--format", "json")
    cli = json.loads(p.stdout)
    assert crl.runs.__module__  # the package, not a shadowing module
    from crl.runs import report_json

    assert report_json(store_db) == cli
    rep = crl.report(store_db)
    rows = rep["rows"]
    assert len(rows) == len(cli["rows"]) == 2
    for (_, r), c in zip(rows.iterrows(), cli["rows"]):
        assert r["scenario"] == c["scenario"] and r["method"] == c["method"]
        assert r["steps_per_task"] == c["steps_per_task"]
        for m in ("performance", "forgetting", "forward_transfer"):
            for part in ("mean", "lo", "hi"):
                want = c[m][part] if c[m] is not None else None
                got = r["%s_%s" % (m, part)]
                if want is None:
                    assert math.isnan(got)
                else:
                    assert got == want
    assert rep["notes"] == cli["notes"]
    only = crl.report(store_db, scenario="t1")["rows"]
    assert list(only["scenario"]) == ["t1"]


def _decode_blob(blob):
    """docs/replay.md's record layout, read here with struct."""
    assert blob[:8] == b"CRLEPI01"
    hsize, flags, T, A, seed = struct.unpack_from("<IIIIQ", blob, 8)
    off0, n0, off_steps, off_succ, off1, n1 = struct.unpack_from("<6I", blob, 64)
    (ret,) = struct.unpack_from("<d", blob, 88)
    steps = np.frombuffer(blob, dtype="<f4", count=T * (A + 1), offset=off_steps)
    steps = steps.reshape(T, A + 1)
    bits = np.frombuffer(blob, dtype=np.uint8, count=(T + 7) // 8, offset=off_succ)
    succ = np.array([(bits[t // 8] >> (t % 8)) & 1 for t in range(T)], dtype=bool)
    return {
        "T": T,
        "A": A,
        "seed": seed,
        "flags": flags,
        "actions": steps[:, :A],
        "rewards": steps[:, A],
        "successes": succ,
        "s0": blob[off0 : off0 + n0],
        "s1": blob[off1 : off1 + n1],
        "ret": ret,
    }


def test_episode_arrays_equal_the_blob(store_db):
    rows = sql(
        store_db,
        "SELECT id, run_id, step, task_idx, kind, env, env_seed, length, ep_return, success, "
        "data FROM episodes WHERE run_id = 2 ORDER BY id",
    )
    assert len(crl.episodes(store_db, 2)) == len(rows) > 0
    for eid, run, step, task, kind, env, seed, length, ret, success, data in rows[:6]:
        e = crl.episode(store_db, eid)
        b = _decode_blob(data)
        assert (e.id, e.run, e.step, e.task, e.kind, e.env) == (eid, run, step, task, kind, env)
        assert e.seed == b["seed"] == seed & (2**64 - 1)
        assert e.length == length == b["T"]
        assert e.actions.dtype == np.float32 and e.actions.shape == (b["T"], b["A"])
        assert e.actions.tobytes() == b["actions"].astype(np.float32).tobytes()
        assert e.rewards.tobytes() == b["rewards"].astype(np.float32).tobytes()
        assert np.array_equal(e.successes, b["successes"])
        assert e.success == bool(success) == bool(b["successes"].any())
        assert e.initial_state == b["s0"] and e.final_state == b["s1"]
        assert e.ret == ret == b["ret"]
        assert e.blob == data


def test_replay_matches_bit_for_bit(store_db):
    ids = [r[0] for r in sql(store_db, "SELECT id FROM episodes ORDER BY id")]
    # one pendulum episode, and one of each t1 task
    picks = [sql(store_db, "SELECT MIN(id) FROM episodes WHERE run_id = 1")[0][0]]
    for t in range(3):
        picks.append(
            sql(store_db, "SELECT MIN(id) FROM episodes WHERE run_id = 2 AND task_idx = ?", t)[0][0]
        )
    assert all(p in ids for p in picks)
    for eid in picks:
        r = crl.replay(store_db, eid)
        e = crl.episode(store_db, eid)
        assert r.verified, r.what
        assert r.differs_at == -1
        assert r.matches
        assert r.rewards.tobytes() == e.rewards.tobytes()
        assert np.array_equal(r.successes, e.successes)
        assert r.obs.shape[0] == e.length and np.isfinite(r.obs).all()
        p = run_cli("replay", "--db", store_db, "--episode", str(eid), "--verify")
        assert "verified" in p.stdout


def test_bad_input_raises_one_clear_error(tmp_path, store_db):
    missing = str(tmp_path / "nope.db")
    for f in (crl.runs, crl.evals, lambda db: crl.metrics(db, 1), crl.report):
        with pytest.raises(FileNotFoundError, match="nope.db"):
            f(missing)
    with pytest.raises(FileNotFoundError):
        crl.episode(missing, 1)
    assert not os.path.exists(missing)
    before = counts(store_db)
    with pytest.raises(crl.CrlError, match="99"):
        crl.evals(store_db, 99)
    with pytest.raises(crl.CrlError, match="99"):
        crl.metrics(store_db, 99)
    with pytest.raises(crl.CrlError, match="123456"):
        crl.episode(store_db, 123456)
    with pytest.raises(TypeError):
        crl.evals(store_db, "1")
    with pytest.raises(crl.CrlError):
        crl.report(store_db, scenario="no-such-scenario")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(crl.CrlError, match="garbage.db"):
        crl.runs(str(garbage))
    assert garbage.read_bytes() == b"this is not a database" * 100
    assert counts(store_db) == before


def test_imports_without_pandas(store_db):
    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "import crl\n"
        "r = crl.runs(%r, as_records=True)\n"
        "assert len(r) == 2 and r[0]['method'] == 'sac'\n"
        "assert len(crl.evals(%r, 2, as_records=True)) > 0\n"
        "try:\n"
        "    crl.runs(%r)\n"
        "except ImportError as e:\n"
        "    assert 'python3-pandas' in str(e), e\n"
        "    print('ok')\n" % (store_db, store_db, store_db)
    )
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"))
    p = subprocess.run(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok"
