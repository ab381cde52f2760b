"""Builds pyalloc's Python extension.

`build_ext` builds the Rust static library with cargo inside the build step
(setuptools-rust only knows cdylibs, and builds C extensions before Rust),
takes the archive and its native link line from cargo's JSON messages, and
links it into the C extension `pyalloc._pyalloc` with Rust's symbols hidden.
The machinery is `pyalloc.setuptools`, the same that users' own `setup.py`
files use, loaded here from the source tree.

It also installs `pyalloc.h`, `libpyalloc.a` and a copy of the Rust crate
into the package: for `pyalloc.get_include()`, `pyalloc.get_library()` and
`pyalloc.setuptools`, which builds users' crates against that copy.

Environment:
  CARGO                    cargo to run (default: the one on PATH)
  CARGO_TARGET_DIR         cargo's target directory (default: target/python-<SOABI>)
  PYALLOC_BUILD_PROFILE    release (default) or debug; `build_ext --debug` means debug
"""

import importlib.util
from pathlib import Path

from setuptools import Extension, setup

ROOT = Path(__file__).parent.resolve()

# The crate files `pyalloc.setuptools` builds users' crates against.
CRATE_FILES = ["Cargo.toml", "Cargo.lock", "build.rs", "cbindgen.toml", "README.md", "include/pyalloc.h"]
CRATE_DIRS = ["src", "tests", "c_tests"]


def load_pyalloc_setuptools():
    """`python/pyalloc/setuptools.py`, without importing the package (whose
    extension does not exist yet)."""
    spec = importlib.util.spec_from_file_location("_pyalloc_setuptools", ROOT / "python" / "pyalloc" / "setuptools.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pyalloc_setuptools = load_pyalloc_setuptools()


class CargoBuildExt(pyalloc_setuptools.build_ext):
    """build_ext that builds pyalloc's own static library and links it in."""

    def run(self):
        release = pyalloc_setuptools.build_profile(self.debug) == "release"
        library, native_libs, _ = pyalloc_setuptools.build_static_library(
            ROOT / "Cargo.toml", release, pyalloc_setuptools.default_target_dir(ROOT), "pyalloc", patch_pyalloc=False
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
        self.copy_file(str(ROOT / "include" / "pyalloc.h"), str(package_dir / "include" / "pyalloc.h"))
        self.copy_file(str(library), str(package_dir / "lib" / "libpyalloc.a"))
        crate = package_dir / "crate"
        for name in CRATE_FILES:
            (crate / name).parent.mkdir(parents=True, exist_ok=True)
            self.copy_file(str(ROOT / name), str(crate / name))
        for directory in CRATE_DIRS:
            self.copy_tree(str(ROOT / directory), str(crate / directory))


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
