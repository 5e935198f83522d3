"""Shared setup of the Python suite (tests/python; run by the ctest
test_python, or by hand:
    PYTHONPATH=python /usr/bin/python3 -m pytest tests/python -q
from the repository after a build).

The package finds build/libcrl.so by itself (or CRL_LIB). The fixtures
find the built `crl` binary (CRL_BIN, else build/crl) and the reference
helper `crl_pyref` (CRL_PYREF, else build/crl_pyref): numbers computed
through the C API directly, not through this package."""

import os
import subprocess
import sys

import pytest

# crl before numpy (the test modules import numpy first): crl's package asks
# OpenBLAS for crl's kernel, which it can only do before numpy loads
# OpenBLAS (python/crl/_lib.py, _prefer_kernel). Importing crl does not load
# libcrl.so (an ASan build could not be loaded here).
import crl  # noqa: E402,F401

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, "build")



def pytest_collection_modifyitems(config, items):
    # An ASan/UBSan libcrl.so cannot be loaded into an interpreter that was not
    # started with the sanitizer runtime preloaded (it would abort the
    # interpreter): the C suites cover that build. Skipped, not left out, so
    # that pytest still exits 0.
    if os.environ.get("CRL_SANITIZED"):
        mark = pytest.mark.skip(reason="CRL_SANITIZED: the sanitizer build's libcrl.so "
                                "cannot be loaded into python")
        for item in items:
            item.add_marker(mark)

sys.path.insert(0, os.path.join(REPO, "python"))


def _tool(var, name):
    p = os.environ.get(var) or os.path.join(BUILD, name)
    if not os.access(p, os.X_OK):
        pytest.skip("%s not built (%s; set %s)" % (name, p, var))
    return p


@pytest.fixture(scope="session")
def crl_bin():
    """Path of the crl command line tool."""
    return _tool("CRL_BIN", "crl")


@pytest.fixture(scope="session")
def pyref():
    """Path of tests/pyref.c's reference program."""
    return _tool("CRL_PYREF", "crl_pyref")


def run_tool(*argv, cwd=None):
    """Run a program; fail the test with its stderr if it fails."""
    r = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("%s failed (%d): %s" % (" ".join(map(str, argv)), r.returncode, r.stderr))
    return r.stdout


@pytest.fixture(scope="session")
def policy_file(crl_bin, tmp_path_factory):
    """A tiny trained pendulum policy: `crl train` 2000 steps + `crl export`."""
    d = tmp_path_factory.mktemp("policy")
    db = d / "runs.db"
    run_tool(
        crl_bin, "train", "--db", db, "--env", "pendulum", "--steps", "2000",
        "--eval-every", "2000", "--eval-episodes", "1", "--start-steps", "500",
        "--update-after", "500", "--batch", "32", "--hidden", "32", "--seed", "3",
        "--quiet", "--threads", "1",
    )
    out = d / "agent.crlp"
    run_tool(crl_bin, "export", "--db", db, "--run", "1", "-o", out)
    return out
