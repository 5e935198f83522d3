"""Fixtures of tests/python/test_runs.py and test_train.py: a tiny real run
store made by the command-line tool (build/crl), and helpers to read it with
sqlite3 directly (the independent numbers the Python package is checked
against)."""

import atexit
import os
import shutil
import sqlite3
import subprocess
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Tiny networks and budgets: a run takes seconds even on a loaded machine.
TINY = [
    "--hidden",
    "16",
    "--layers",
    "1",
    "--batch",
    "16",
    "--start-steps",
    "100",
    "--update-after",
    "100",
    "--eval-episodes",
    "1",
    "--threads",
    "1",
]
ENV_RUN = ["--env", "pendulum", "--steps", "400", "--eval-every", "200", "--seed", "7"]
SCENARIO_RUN = [
    "--scenario",
    "t1",
    "--method",
    "ewc",
    "--steps-per-task",
    "200",
    "--eval-every",
    "200",
    "--seed",
    "5",
]


def crl_bin():
    """The command-line tool next to the library the package loads."""
    p = os.environ.get("CRL_BIN") or os.path.join(REPO, "build", "crl")
    if not os.path.exists(p):
        pytest.skip("build/crl not built (make), or set CRL_BIN")
    return p


def run_cli(*args, check=True):
    p = subprocess.run(
        [crl_bin(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        timeout=600,
    )
    if check and p.returncode != 0:
        raise AssertionError("crl %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p


_store = {}


def tiny_store():
    """A store with two finished runs made by `crl train`: run 1 a
    single-env pendulum run, run 2 a t1 scenario run with ewc. Made once per
    test session."""
    if "path" not in _store:
        d = tempfile.mkdtemp(prefix="crl-pyruns-")
        db = os.path.join(d, "runs.db")
        run_cli("train", "--db", db, *ENV_RUN, *TINY, "--quiet")
        run_cli("train", "--db", db, *SCENARIO_RUN, *TINY, "--quiet")
        _store["dir"] = d
        _store["path"] = db
        atexit.register(cleanup)
    return _store["path"]


@pytest.fixture(scope="session")
def store_db():
    return tiny_store()


def sql(db, query, *params):
    """Rows of query on db, opened read-only."""
    con = sqlite3.connect("file:%s?mode=ro" % os.path.abspath(db), uri=True)
    try:
        return con.execute(query, params).fetchall()
    finally:
        con.close()


def counts(db):
    """Row counts of the tables a run writes."""
    tables = ["runs", "tasks", "evals", "metrics", "episodes", "checkpoints"]
    return {t: sql(db, "SELECT COUNT(*) FROM %s" % t)[0][0] for t in tables}


def cleanup():
    d = _store.pop("dir", None)
    _store.pop("path", None)
    if d:
        shutil.rmtree(d, ignore_errors=True)
