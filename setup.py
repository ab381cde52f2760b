"""Builds pyalloc's Python extension.

`build_ext` builds the Rust static library with cargo inside the build step
(setuptools-rust only knows cdylibs, and builds C extensions before Rust),
takes the archive and its native link line from cargo's JSON messages, and
links it into the C extension `pyalloc._pyalloc` with Rust's symbols hidden.
It also installs `pyalloc.h` and `libpyalloc.a` into the package, for
`pyalloc.get_include()` and `pyalloc.get_library()`.

Environment:
  CARGO                    cargo to run (default: the one on PATH)
  CARGO_TARGET_DIR         cargo's target directory (default: target/python-<tag>)
  PYALLOC_BUILD_PROFILE    release (default) or debug; `build_ext --debug` means debug
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError, PlatformError

ROOT = Path(__file__).parent.resolve()


def find_cargo():
    cargo = os.environ.get("CARGO") or shutil.which("cargo")
    if not cargo:
        raise PlatformError(
            "cargo was not found: install Rust (https://rustup.rs) or set CARGO to the cargo executable"
        )
    return cargo


def build_static_library(release, target_dir):
    """Runs cargo; returns the static library's path and its native link flags."""
    command = [
        find_cargo(), "rustc", "--lib", "--crate-type", "staticlib",
        "--manifest-path", str(ROOT / "Cargo.toml"), "--message-format=json",
    ]
    if release:
        command.append("--release")
    command += ["--", "--print", "native-static-libs"]
    env = dict(os.environ)
    # The library must be built for the interpreter that runs this build.
    env["PYO3_PYTHON"] = sys.executable
    env.setdefault("CARGO_TARGET_DIR", str(target_dir))
    print("building the pyalloc static library: " + " ".join(command), flush=True)
    try:
        process = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=False)
    except OSError as error:
        raise PlatformError(f"could not run cargo ({command[0]}): {error}") from error

    library = None
    native_libs = None
    for line in process.stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("reason") == "compiler-artifact" and "staticlib" in message["target"]["kind"]:
            library = next(name for name in message["filenames"] if name.endswith((".a", ".lib")))
        elif message.get("reason") == "compiler-message":
            rendered = message["message"].get("rendered") or ""
            if "native-static-libs:" in rendered:
                native_libs = rendered.split("native-static-libs:", 1)[1].split()
            else:
                sys.stderr.write(rendered)
    if process.returncode != 0:
        raise CompileError(
            "cargo failed to build the pyalloc static library (its errors are above); "
            "fix them, or update Rust with `rustup update`"
        )
    if library is None or native_libs is None:
        raise CompileError("cargo built pyalloc but did not report the static library and its link flags")
    return Path(library), native_libs


class CargoBuildExt(build_ext):
    """build_ext that builds the Rust static library first and links it in."""

    def run(self):
        profile = os.environ.get("PYALLOC_BUILD_PROFILE", "debug" if self.debug else "release")
        if profile not in ("release", "debug"):
            raise PlatformError(f"PYALLOC_BUILD_PROFILE must be 'release' or 'debug', not {profile!r}")
        target_dir = ROOT / "target" / f"python-{sys.implementation.cache_tag}"
        library, native_libs = build_static_library(profile == "release", target_dir)
        for extension in self.extensions:
            extension.extra_objects = [str(library)]
            extension.depends = [str(library), str(ROOT / "include" / "pyalloc.h")]
            extension.extra_link_args = list(native_libs)
            if sys.platform.startswith("linux"):
                # Keep Rust's symbols out of the module's dynamic symbol table.
                extension.extra_link_args.append("-Wl,--exclude-libs,ALL")
        super().run()
        self.install_c_api(library)

    def install_c_api(self, library):
        """Puts pyalloc.h and libpyalloc.a in the package (get_include, get_library)."""
        package_dir = Path(self.get_ext_fullpath("pyalloc._pyalloc")).parent
        (package_dir / "include").mkdir(parents=True, exist_ok=True)
        (package_dir / "lib").mkdir(parents=True, exist_ok=True)
        self.copy_file(str(ROOT / "include" / "pyalloc.h"), str(package_dir / "include" / "pyalloc.h"))
        self.copy_file(str(library), str(package_dir / "lib" / "libpyalloc.a"))


setup(
    ext_modules=[
        Extension(
            "pyalloc._pyalloc",
            sources=["python/pyalloc/_pyalloc.c"],
            include_dirs=["include"],
            extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-Werror"],
        )
    ],
    cmdclass={"build_ext": CargoBuildExt},
)
