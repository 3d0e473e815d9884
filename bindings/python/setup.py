"""
setup.py -- builds libkp with CMake and installs it inside the `pykp` package.

    pip install ./bindings/python                       # from the repository root
    pip install --no-build-isolation ./bindings/python  # offline (setuptools + wheel installed)

The library is found, in this order:
  1. LIBKP_PATH at build time: an existing libkp.so (or a directory holding one),
     copied into the package instead of building;
  2. the libkp sources: libkp-src/ next to this file (an sdist carries them
     there) or two levels up (this repository), configured and built with
     CMake (Release, no tests/bench/examples) in build/libkp-cmake/ under this
     directory, then copied into the package as pykp/libkp.so.
At run time, LIBKP_PATH (if set) overrides the bundled library.

The wheel (`pip wheel ./bindings/python`) carries libkp (its platform tag says
so): installing it needs no compiler or CMake. The sdist carries libkp's
sources (CMakeLists.txt, cmake/, include/, src/) in libkp-src/ and builds them.
Metadata (version in pykp/_version.py, dependencies, extras) is in
pyproject.toml.

Environment knobs: LIBKP_CMAKE_ARGS (extra arguments for the CMake configure
step), LIBKP_BUILD_JOBS (parallel build jobs, default: all cores).
"""
import glob
import os
import shlex
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLED_SRC = os.path.join(HERE, "libkp-src")  # in an sdist
REPO = BUNDLED_SRC if os.path.isdir(BUNDLED_SRC) else os.path.abspath(os.path.join(HERE, "..", ".."))
# What of the repository builds libkp (copied into an sdist's libkp-src/).
LIBKP_TREE = ("CMakeLists.txt", "cmake", "include", "src")


def _is_libkp_repo(path):
    try:
        with open(os.path.join(path, "CMakeLists.txt")) as f:
            return "project(libkp" in f.read() and os.path.exists(os.path.join(path, "include", "kp.h"))
    except OSError:
        return False


def _find_built(build_dir):
    for pattern in ("src/libkp.so.*.*.*", "src/libkp.so", "src/libkp.dylib", "**/libkp.so"):
        hits = sorted(glob.glob(os.path.join(build_dir, pattern), recursive=True))
        hits = [h for h in hits if os.path.isfile(h)]
        if hits:
            return os.path.realpath(hits[0])
    return None


def _library():
    env = os.environ.get("LIBKP_PATH")
    if env:
        path = env
        if os.path.isdir(env):
            for name in ("libkp.so", "libkp.so.0", "libkp.dylib"):
                if os.path.exists(os.path.join(env, name)):
                    path = os.path.join(env, name)
                    break
        if not os.path.isfile(path):
            raise RuntimeError("LIBKP_PATH=%s: no libkp shared library there" % env)
        return os.path.realpath(path)
    if not _is_libkp_repo(REPO):
        raise RuntimeError(
            "pykp: the libkp sources are not at %s and LIBKP_PATH is not set; "
            "build pykp from the libkp repository or point LIBKP_PATH at libkp.so" % REPO
        )
    cmake = shutil.which("cmake")
    if not cmake:
        raise RuntimeError("pykp: cmake is needed to build libkp (apt-get install cmake), or set LIBKP_PATH")
    build_dir = os.path.join(HERE, "build", "libkp-cmake")
    configure = [
        cmake,
        "-S",
        REPO,
        "-B",
        build_dir,
        "-DCMAKE_BUILD_TYPE=Release",
        "-DKP_BUILD_TESTS=OFF",
        "-DKP_BUILD_BENCH=OFF",
        "-DKP_BUILD_EXAMPLES=OFF",
    ] + shlex.split(os.environ.get("LIBKP_CMAKE_ARGS", ""))
    jobs = os.environ.get("LIBKP_BUILD_JOBS") or str(os.cpu_count() or 2)
    print("pykp: building libkp:", " ".join(configure))
    subprocess.check_call(configure)
    subprocess.check_call([cmake, "--build", build_dir, "--target", "kp", "-j", jobs])
    lib = _find_built(build_dir)
    if not lib:
        raise RuntimeError("pykp: libkp was built in %s but its shared library was not found" % build_dir)
    return lib


class BuildPyWithLibkp(build_py):
    """build_py, plus libkp copied into the package as pykp/libkp.so."""

    def run(self):
        super().run()
        lib = _library()
        dest_dir = os.path.join(self.build_lib, "pykp")
        os.makedirs(dest_dir, exist_ok=True)
        dest = os.path.join(dest_dir, "libkp.dylib" if lib.endswith(".dylib") else "libkp.so")
        shutil.copyfile(lib, dest)
        os.chmod(dest, 0o755)
        print("pykp: bundled %s as %s" % (lib, dest))


class SdistWithLibkp(sdist):
    """sdist, plus libkp's sources in libkp-src/ so the sdist builds alone."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        if not _is_libkp_repo(REPO):
            raise RuntimeError("pykp: the libkp sources are not at %s: cannot make an sdist" % REPO)
        dest = os.path.join(base_dir, "libkp-src")
        for name in LIBKP_TREE:
            src = os.path.join(REPO, name)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(dest, name), ignore=shutil.ignore_patterns("build*", "__pycache__"))
            else:
                os.makedirs(dest, exist_ok=True)
                shutil.copyfile(src, os.path.join(dest, name))


class BinaryDistribution(Distribution):
    """The wheel carries a shared library: tag it for this platform."""

    def has_ext_modules(self):
        return True


setup(
    cmdclass={"build_py": BuildPyWithLibkp, "sdist": SdistWithLibkp},
    distclass=BinaryDistribution,
)
