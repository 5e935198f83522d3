"""The one handle on the C library: a cffi FFI in ABI mode over libcrl.so.

Every module of the package declares the C functions it calls with
``declare(cdef_text)`` at import time and reaches them through ``lib()``.
The types several modules share are declared here, once (cffi refuses a
second definition of a struct).

Where the library is found, first hit wins:
  1. the ``CRL_LIB`` environment variable (a path to libcrl.so);
  2. ``libcrl.so`` next to this file (an installed package);
  3. the build tree of the repository this file lives in
     (``<repo>/build/libcrl.so``), so ``PYTHONPATH=python`` works after
     ``make``.
"""

import os
import sys
import warnings

import cffi

ffi = cffi.FFI()

ffi.cdef(
    """
    typedef struct { int code; char msg[512]; } crl_err;
    const char *crl_strerror(int code);
    const char *crl_blas_preferred_core(void);

    typedef struct { uint64_t s[4]; int has_spare; double spare; } crl_rng;
    void crl_rng_seed(crl_rng *r, uint64_t seed);

    struct mjModel_;
    struct mjData_;
    typedef struct crl_env_spec crl_env_spec;
    typedef struct crl_env crl_env;
    typedef struct {
        float reward;
        int success;
        int terminal;
        int truncated;
    } crl_step_info;
    """
)

_lib = None
_path = None


class CrlError(RuntimeError):
    """An error reported by the C library (its one-line message)."""


def declare(cdef_text):
    """Add declarations of C functions or types (once per module)."""
    ffi.cdef(cdef_text)


def _candidates():
    env = os.environ.get("CRL_LIB")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "libcrl.so")
    yield os.path.join(os.path.dirname(os.path.dirname(here)), "build", "libcrl.so")


def lib():
    """The loaded library (opened on first use)."""
    global _lib, _path
    if _lib is None:
        tried = []
        for p in _candidates():
            tried.append(p)
            if os.path.exists(p):
                _lib = ffi.dlopen(p)
                _path = p
                break
        if _lib is None:
            raise CrlError(
                "crl: libcrl.so not found (tried %s); build crl (make) or set CRL_LIB"
                % ", ".join(tried)
            )
    return _lib


def library_path():
    """The path of the loaded libcrl.so."""
    lib()
    return _path


def new_err():
    return ffi.new("crl_err *")


def check(rc, err, what=None):
    """Raise CrlError with the library's message when rc != 0."""
    if rc != 0:
        msg = ffi.string(err.msg).decode("utf-8", "replace") if err is not None else ""
        if not msg:
            msg = ffi.string(lib().crl_strerror(rc)).decode()
        raise CrlError(msg if what is None else "%s: %s" % (what, msg))
    return rc


class Owned:
    """Base of the objects that own C memory (Env, VecEnv, Policy): a
    context manager whose exit, like garbage collection, calls close()."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass



def preferred_core():
    """The OpenBLAS kernel crl asks for on this CPU, from its feature flags:
    the rule of crl_blas_preferred_core (nn/blas.c), read here from
    /proc/cpuinfo so that importing crl does not load the library
    (tests/python/test_kernel.py checks that the two agree). None: OpenBLAS's
    own detection."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
            else:
                return None
    except OSError:
        return None
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def _loaded_core():
    """The kernel of an OpenBLAS already in the process, or None."""
    import ctypes

    try:
        ob = ctypes.CDLL("libopenblas.so.0", mode=getattr(os, "RTLD_NOLOAD", 4))
        ob.openblas_get_corename.restype = ctypes.c_char_p
        return ob.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return None


def _prefer_kernel():
    """Ask for crl's OpenBLAS kernel before numpy loads OpenBLAS.

    OpenBLAS picks its kernel once, when it is loaded, and numpy loads it
    first. Left alone it detects the CPU itself, and on CPUs it does not
    know (OpenBLAS 0.3.21 on recent Xeons) it falls back to a generic
    kernel ("Prescott") that is several times slower and sums in another
    order than the crl tool. So, as the C library does for the crl tool,
    the package sets OPENBLAS_CORETYPE to crl's choice, unless the user
    set it. If numpy was imported before crl, it is too late: a warning
    says so."""
    if os.environ.get("OPENBLAS_CORETYPE"):
        return
    core = preferred_core()
    if core is None:
        return
    if "numpy" in sys.modules:
        if _loaded_core() in (None, core):
            return
        warnings.warn(
            "crl: numpy was imported before crl and has loaded OpenBLAS with the CPU's "
            "own kernel detection; import crl first (or set OPENBLAS_CORETYPE=%s) for "
            "crl's %s kernel" % (core, core),
            RuntimeWarning,
            stacklevel=3,
        )
        return
    os.environ["OPENBLAS_CORETYPE"] = core


_prefer_kernel()
