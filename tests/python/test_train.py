"""crl.train: the same stored configuration as `crl train` for the same
options, a tiny real run, Ctrl-C and resume, and bad options refused before
anything is written."""

import os
import signal

import pytest

from _runs_fixtures import (  # noqa: F401
    ENV_RUN,
    SCENARIO_RUN,
    TINY,
    counts,
    run_cli,
    sql,
    store_db,
)

import crl


def _kwargs(argv):
    """`crl train` flags as crl.train's keyword arguments."""
    out = {}
    it = iter(argv)
    for flag in it:
        value = next(it)
        key = flag[2:].replace("-", "_")
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def _config(db, run):
    return sql(db, "SELECT config_json FROM runs WHERE id = ?", run)[0][0]


def test_tiny_run_has_the_clis_configuration(tmp_path, store_db):
    # store_db's run 1 is `crl train` with the same flags (ENV_RUN + TINY).
    db = str(tmp_path / "py.db")
    seen = []
    rid = crl.train(db, progress=seen.append, **_kwargs(ENV_RUN + TINY))
    assert rid == 1
    # The stored configuration is the one encoder's text: identical.
    assert _config(db, 1) == _config(store_db, 1)
    assert sql(db, "SELECT status, method, scenario, seed FROM runs") == sql(
        store_db, "SELECT status, method, scenario, seed FROM runs WHERE id = 1"
    )
    assert sql(db, "SELECT status FROM runs")[0][0] == "finished"
    # Same evaluation schedule and episode logging as the CLI's run.
    for t in ("evals", "episodes", "tasks"):
        q = "SELECT COUNT(*) FROM %s WHERE run_id = 1" % t
        assert sql(db, q) == sql(store_db, q)
    assert sql(db, "SELECT COUNT(*) FROM evals")[0][0] == 2
    assert seen and seen[-1].step == seen[-1].total == 400
    assert seen[-1].task_name == "pendulum" and seen[-1].run == 1
    assert [p.step for p in seen] == sorted(p.step for p in seen)


def test_options_spelled_as_cli_flags(tmp_path):
    # Every flag of `crl train --help` is an option of crl.train: none is
    # refused as unknown (each call still fails, before anything is written).
    p = run_cli("train", "--help")
    flags = [
        line.split()[0][2:]
        for line in p.stdout.splitlines()
        if line.strip().startswith("--")
    ]
    assert "steps-per-task" in flags and "eval-every" in flags and len(flags) > 60
    # Under a regular file: no store can be made there (a missing folder
    # would be made), so a flag whose value "x" passes cannot start a run.
    (tmp_path / "file").write_text("")
    db = str(tmp_path / "file" / "x.db")
    for f in flags:
        name = f.replace("-", "_")
        # dry_run: the tool's estimate, not a run option.
        if name in ("db", "resume", "quiet", "help", "dry_run"):
            continue
        with pytest.raises(Exception) as e:
            crl.train(db, **{name: "x"})
        assert "unknown option" not in str(e.value), name
    assert not os.path.exists(db)
    with pytest.raises(ValueError, match="unknown option"):
        crl.train(db, stepz=5)


def _interrupt(p):
    # Ctrl-C at the first report from inside a run (not its closing one):
    # runs report once a second, so the budgets below last longer than that.
    if p.step < p.total:
        os.kill(os.getpid(), signal.SIGINT)


def _set(argv, flag, value):
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


def test_scenario_run_has_the_clis_configuration(tmp_path, store_db):
    # store_db's run 2 is `crl train` with SCENARIO_RUN + TINY.
    db = str(tmp_path / "py.db")
    assert crl.train(db, **_kwargs(SCENARIO_RUN + TINY)) == 1
    assert sql(db, "SELECT status FROM runs WHERE id = 1")[0][0] == "finished"
    assert _config(db, 1) == _config(store_db, 2)


def test_scenario_run_stops_on_ctrl_c(tmp_path):
    # Stopped with Ctrl-C inside its first task: checkpointed, resumable.
    db = str(tmp_path / "py.db")
    argv = _set(SCENARIO_RUN, "--steps-per-task", "20000") + TINY
    with pytest.raises(KeyboardInterrupt, match="resume=1"):
        crl.train(db, progress=_interrupt, **_kwargs(argv))
    assert sql(db, "SELECT status FROM runs WHERE id = 1")[0][0] == "interrupted"
    # Python's SIGINT handler is back.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_then_resume(tmp_path):
    db = str(tmp_path / "py.db")
    argv = _set(_set(ENV_RUN, "--steps", "100000"), "--eval-every", "25000") + TINY
    with pytest.raises(KeyboardInterrupt, match="resume=1"):
        crl.train(db, progress=_interrupt, **_kwargs(argv))
    assert sql(db, "SELECT status FROM runs WHERE id = 1")[0][0] == "interrupted"
    assert sql(db, "SELECT COUNT(*) FROM checkpoints WHERE run_id = 1")[0][0] >= 1
    # The interrupted run resumes to the end.
    assert crl.train(db, resume=1) == 1
    assert sql(db, "SELECT status FROM runs WHERE id = 1")[0][0] == "finished"
    assert sql(db, "SELECT COUNT(*) FROM runs")[0][0] == 1
    assert sql(db, "SELECT MAX(step) FROM evals")[0][0] == 100000
    with pytest.raises(ValueError, match="already finished"):
        crl.train(db, resume=1)


BAD = [
    ({"env": "pendulum", "bogus": 1}, "unknown option bogus"),
    ({"env": "pendulum", "lr": "abc"}, "lr"),
    ({"env": "pendulum", "batch": -3}, "batch"),
    ({"env": "pendulum", "steps": 1.5}, "steps"),
    ({"env": "pendulum", "gamma": float("nan")}, "gamma"),
    ({"env": "pendulum", "lr": [1]}, "lr"),
    ({"env": "nope"}, "nope"),
    ({"scenario": "nope", "method": "ewc"}, "nope"),
    ({"scenario": "t1", "method": "bogus"}, "bogus"),
    ({"scenario": "t1", "steps": 10}, "steps_per_task"),
    ({"env": "pendulum", "method": "ewc"}, "method"),
    ({"env": "pendulum", "log_train_episodes": "every:0"}, "log-train-episodes"),
    ({"env": "pendulum", "db": "x.db"}, "db"),
    ({"env": "pendulum", "updates_per_task": 5}, "offline"),
    # issue 23 (docs/robustness-validation.md): refused before the store is
    # opened, by the library's rules that `crl train` shares.
    ({"env": "pendulum", "batch": 1}, "batch must be >= 2"),
    ({"scenario": "t1", "method": "ft1", "batch": 1}, "batch must be >= 2"),
    ({"env": "pendulum", "env_xml": "x.xml"}, "env and env_xml conflict"),
    ({"scenario": "t1", "method": "ewc", "csp_peaked": 1}, "csp_peaked is an option of method csp"),
    ({"scenario": "t1", "method": "ewc", "l2_coef": 3}, "l2_coef is an option of method l2"),
    ({"scenario": "t1", "method": "csp", "steps_per_task": 100}, "validation rollouts"),
    ({"scenario": "t1", "method": "l2m"}, "needs --base"),
]


@pytest.mark.parametrize("options,words", BAD, ids=[b[1] for b in BAD])
def test_bad_options_write_nothing(tmp_path, options, words):
    db = str(tmp_path / "new.db")
    with pytest.raises((ValueError, TypeError)) as e:
        crl.train(db, **options)
    msg = str(e.value)
    assert words in msg and "\n" not in msg, msg
    assert not os.path.exists(db)


def test_bad_input_leaves_an_existing_store_unchanged(tmp_path, store_db):
    db = store_db
    before = counts(db)
    for options in ({"env": "nope"}, {"env": "pendulum", "lr": -1.0}, {"hidden": 0}):
        with pytest.raises(ValueError):
            crl.train(db, **options)
    with pytest.raises(ValueError, match="99"):
        crl.train(db, resume=99)
    with pytest.raises(ValueError, match="no other options"):
        crl.train(db, resume=1, steps=10)
    with pytest.raises(FileNotFoundError):
        crl.train(str(tmp_path / "missing.db"), resume=1)
    assert not os.path.exists(str(tmp_path / "missing.db"))
    with pytest.raises(TypeError):
        crl.train(db, progress="yes", env="pendulum")
    assert counts(db) == before


def test_refused_options_leave_the_store_byte_for_byte(tmp_path, store_db):
    import hashlib

    def digest():
        with open(store_db, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    before = digest()
    for options in (
        {"env": "pendulum", "batch": 1},
        {"scenario": "t1", "method": "nosuch"},
        {"scenario": "t1", "method": "ewc", "csp_rollouts": 2},
        {"scenario": "t1", "method": "l2m", "base": "99"},
    ):
        with pytest.raises(ValueError):
            crl.train(store_db, **options)
        assert digest() == before, options


SLIDER = (
    '<mujoco><worldbody><body name="cart"><joint name="x" type="slide" axis="1 0 0"/>'
    '<geom type="box" size=".1 .1 .1" mass="1"/></body></worldbody><actuator>'
    '<motor joint="x" gear="5" ctrllimited="true" ctrlrange="-1 1"/></actuator></mujoco>'
)


def test_own_mjcf_trains_and_replays(tmp_path):
    xml = tmp_path / "slider.xml"
    xml.write_text(SLIDER)
    db = str(tmp_path / "xml.db")
    opts = _kwargs(TINY)
    opts.update(env_xml=str(xml), xml_body="cart", xml_steps=100, steps=200, eval_every=200)
    rid = crl.train(db, **opts)
    assert sql(db, "SELECT status, method, scenario FROM runs WHERE id = ?", rid) == [
        ("finished", "sac", "slider.xml")
    ]
    eid = sql(db, "SELECT MIN(id) FROM episodes WHERE kind = 'eval'")[0][0]
    r = crl.replay(db, eid)
    assert r.verified and r.matches, r.what
    assert r.obs.shape == (100, 2)  # qpos and qvel of the slider
    p = run_cli("replay", "--db", db, "--episode", str(eid), "--verify")
    assert "verified" in p.stdout
    with pytest.raises(ValueError, match="reach"):
        crl.train(str(tmp_path / "no.db"), env_xml=str(xml), xml_reward="reach")
    assert not os.path.exists(str(tmp_path / "no.db"))


def test_progress_line_and_callback_errors(tmp_path, capsys):
    xml = tmp_path / "slider.xml"
    xml.write_text(SLIDER)
    opts = _kwargs(TINY)
    opts.update(env_xml=str(xml), xml_body="cart", xml_steps=100, steps=200, eval_every=200)
    crl.train(str(tmp_path / "a.db"), progress=True, **opts)
    err = capsys.readouterr().err
    assert "task 0 %s (1/1) | step 200/200 |" % xml in err, err
    # An exception in the callback stops the run (resumable) and is raised.

    def boom(p):
        raise RuntimeError("stop here")

    db = str(tmp_path / "b.db")
    with pytest.raises(RuntimeError, match="stop here"):
        crl.train(db, progress=boom, **opts)
    assert sql(db, "SELECT status FROM runs") == [("interrupted",)]
