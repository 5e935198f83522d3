"""crl's package asks OpenBLAS for crl's kernel before numpy loads it
(python/crl/_lib.py): Python runs the same kernel as the crl tool, and a
user's OPENBLAS_CORETYPE still wins. Without this, numpy's OpenBLAS 0.3.21
falls back to a generic kernel on CPUs it does not know, and Python's
numbers differ from the tool's."""

import os
import subprocess
import sys

import crl
from crl import _lib

PROBE = (
    "import {first}, {second}, ctypes, warnings\n"
    "ob = ctypes.CDLL('libopenblas.so.0')\n"
    "ob.openblas_get_corename.restype = ctypes.c_char_p\n"
    "print(ob.openblas_get_corename().decode())\n"
)


def _probe(first, second):
    out = subprocess.run(
        [sys.executable, "-W", "always", "-c", PROBE.format(first=first, second=second)],
        capture_output=True, text=True, env=dict(os.environ), check=True,
    )
    return out.stdout.strip(), out.stderr


def test_python_rule_is_the_libraries():
    c = _lib.lib().crl_blas_preferred_core()
    want = None if c == _lib.ffi.NULL else _lib.ffi.string(c).decode()
    assert _lib.preferred_core() == want


def test_crl_first_gets_crls_kernel():
    got, err = _probe("crl", "numpy")
    user = os.environ.get("OPENBLAS_CORETYPE")
    want = user or _lib.preferred_core()
    if want is None:  # OpenBLAS's own detection: nothing to compare
        return
    assert got.lower() == want.lower(), (got, want)
    assert "numpy was imported before crl" not in err


def test_numpy_first_warns_when_the_kernel_differs():
    got, err = _probe("numpy", "crl")
    want = os.environ.get("OPENBLAS_CORETYPE") or _lib.preferred_core()
    if want is None or got.lower() == want.lower():
        assert "numpy was imported before crl" not in err
    else:
        assert "numpy was imported before crl" in err, err


def test_this_process_runs_crls_kernel():
    # conftest imports crl before numpy.
    want = os.environ.get("OPENBLAS_CORETYPE") or _lib.preferred_core()
    if want is not None:
        assert _lib._loaded_core().lower() == want.lower()
