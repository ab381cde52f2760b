"""Builds pyalloc's Python extension.

`build_ext` builds the Rust static library with cargo inside the build step
(with the `global-allocator` and `demo` features), takes the archive and its
native link line from cargo's JSON messages, and links it into the C
extension `pyalloc._pyalloc` with Rust's symbols hidden. The machinery is
`pyalloc.setuptools`, the same that users' own `setup.py` files use, loaded
here from the source tree.

It also installs `pyalloc.h`, `libpyalloc.a` and a copy of the Rust crate
(the files Cargo.toml's `include` names) into the package: for
`pyalloc.get_include()`, `pyalloc.get_library()` and `pyalloc.setuptools`,
which builds users' crates against that copy.

Environment:
  CARGO                    cargo to run (default: the one on PATH)
  CARGO_TARGET_DIR         cargo's target directory (default: target/python-<SOABI>)
  PYALLOC_BUILD_PROFILE    release (default) or debug; `build_ext --debug` means debug
"""

import importlib.util
import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.sdist import sdist

ROOT = Path(__file__).parent.resolve()
FEATURES = ["global-allocator", "demo"]


def load_sibling(name):
    """A module of `python/pyalloc/`, without importing the package (whose
    extension does not exist yet)."""
    spec = importlib.util.spec_from_file_location(f"_pyalloc_{name}", ROOT / "python" / "pyalloc" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pyalloc_setuptools = load_sibling("setuptools")
crate_files = load_sibling("_crate_files")


class CargoBuildExt(pyalloc_setuptools.build_ext):
    """build_ext that builds pyalloc's own static library and links it in."""

    def run(self):
        release = pyalloc_setuptools.build_profile(self.debug) == "release"
        library, native_libs, _ = pyalloc_setuptools.build_static_library(
            ROOT / "Cargo.toml",
            release,
            pyalloc_setuptools.default_target_dir(ROOT),
            "pyalloc",
            features=FEATURES,
            patch_pyalloc=False,
        )
        for extension in self.extensions:
            pyalloc_setuptools.link_static_library(extension, library, native_libs)
            extension.depends.append(str(ROOT / "include" / "pyalloc.h"))
        super().run()
        self.install_c_api(library)

    def install_c_api(self, library):
        """Puts pyalloc.h, libpyalloc.a and the crate in the package."""
        package_dir = Path(self.get_ext_fullpath("pyalloc._pyalloc")).parent
        for directory in ("include", "lib"):
            (package_dir / directory).mkdir(parents=True, exist_ok=True)
        for header in ("pyalloc.h", "pyalloc_python.h"):
            self.copy_file(str(ROOT / "include" / header), str(package_dir / "include" / header))
        # libpyalloc.a (Linux, macOS, Windows GNU) or pyalloc.lib (MSVC): the
        # name cargo gave it.
        self.copy_file(str(library), str(package_dir / "lib" / Path(library).name))
        # A build directory left by an older checkout may hold crate files
        # that are gone now (cargo would read them): start the copy afresh.
        shutil.rmtree(package_dir / "crate", ignore_errors=True)
        for name in crate_files.crate_files(ROOT):
            target = package_dir / "crate" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            self.copy_file(str(ROOT / name), str(target))


class CrateSdist(sdist):
    """sdist that carries the Rust crate (the files Cargo.toml's `include`
    names), so that a wheel can be built from it."""

    def make_release_tree(self, base_dir, files):
        crate = [name for name in crate_files.crate_files(ROOT) if name not in files]
        super().make_release_tree(base_dir, [*files, *crate])


setup(
    ext_modules=[
        Extension(
            "pyalloc._pyalloc",
            sources=["python/pyalloc/_pyalloc.c", "python/pyalloc/_demo.c", "python/pyalloc/_timing.c"],
            depends=["python/pyalloc/_pyalloc_module.h", "include/pyalloc_python.h"],
            include_dirs=["include"],
            define_macros=[("PYALLOC_DEMO", None)],
            extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-Werror"],
        )
    ],
    cmdclass={"build_ext": CargoBuildExt, "sdist": CrateSdist},
)
