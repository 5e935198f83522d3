"""Build hook of the crl package (metadata is in pyproject.toml): copy the
built C library into the package, so an installed crl finds it next to
_lib.py. The library is $CRL_LIB if set, else ../build/libcrl.so (the
repository's build tree; build it first with `make`)."""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithLib(build_py):
    def run(self):
        super().run()
        src = os.environ.get("CRL_LIB") or os.path.join(HERE, "..", "build", "libcrl.so")
        dst = os.path.join(self.build_lib, "crl", "libcrl.so")
        if os.path.isfile(src):
            shutil.copyfile(src, dst)  # follows the libcrl.so -> .so.0 links
            print("crl: packaged %s" % os.path.realpath(src))
        else:
            print(
                "crl: WARNING: %s not found; the installed package will need CRL_LIB "
                "(or build crl first: make)" % src
            )


setup(cmdclass={"build_py": BuildPyWithLib})
