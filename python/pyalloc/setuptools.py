"""Link your own cargo crate into your own C extension, with pyalloc's heap.

setuptools-rust builds cdylibs only, and builds C extensions before Rust; a C
extension that calls into a Rust static library needs the opposite. In your
``setup.py``::

    from setuptools import setup
    from pyalloc.setuptools import RustStaticExtension, build_ext

    setup(
        ext_modules=[
            RustStaticExtension(
                "mypackage._native",
                sources=["src/mypackage/_native.c"],
                cargo_manifest="rust/Cargo.toml",
            )
        ],
        cmdclass={"build_ext": build_ext},
    )

The crate is a ``staticlib`` (``[lib] crate-type = ["staticlib"]``) that
depends on ``pyalloc = "0.1"``. ``build_ext`` turns on pyalloc's
``global-allocator`` feature for it, so ``pyalloc::PyAlloc`` becomes its
global allocator (the crate must not declare one itself; pass
``pyalloc_global_allocator=False`` to keep its own). ``build_ext`` builds it with cargo inside the build step for the running
interpreter, takes the archive and its native link flags from cargo's JSON
messages, links it in with Rust's symbols hidden from the module's dynamic
symbol table, and puts ``pyalloc.h``, the crate's ``include/`` directory and
its build script's ``OUT_DIR`` (where a cbindgen header usually goes) on the
include path. Cargo rebuilds only what changed, and an unchanged archive
does not relink the extension.

The dependency ``pyalloc = "0.1"`` resolves to the pyalloc crate that ships
with this module (a cargo ``[patch]`` given on the command line), so the Rust
and Python sides are always the same release.

Environment: ``CARGO`` (the cargo to run), ``CARGO_TARGET_DIR`` (default:
``target/python-<SOABI>`` next to the crate), ``PYALLOC_BUILD_PROFILE``
(``release``, the default, or ``debug``; ``build_ext --debug`` means debug).

This module needs only the standard library and setuptools (and its sibling
``_cargo.py``), so a ``setup.py`` may also load it from a pyalloc checkout by
path.
"""

import importlib.util
import os
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension
from setuptools.command.build_ext import build_ext as _build_ext
from setuptools.errors import CompileError, PlatformError

try:
    from . import _cargo
except ImportError:  # loaded by path from a pyalloc checkout, outside its package
    _spec = importlib.util.spec_from_file_location("_pyalloc_cargo", Path(__file__).with_name("_cargo.py"))
    _cargo = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_cargo)

__all__ = ["RustStaticExtension", "build_ext"]

# Symbols every Rust static library carries; two archives that both define
# them cannot be linked into one module.
_RUST_MARKERS = (b"rust_eh_personality", b"__rust_alloc_error_handler")
# pyalloc's feature that installs PyAlloc as the crate's global allocator.
GLOBAL_ALLOCATOR_FEATURE = "pyalloc/global-allocator"


def pyalloc_crate_dir():
    """The pyalloc crate this module belongs to: the checkout it sits in, or
    the copy of the crate installed with the Python package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent.parent, here / "crate"):
        manifest = candidate / "Cargo.toml"
        if manifest.is_file() and 'name = "pyalloc"' in manifest.read_text(encoding="utf-8"):
            return candidate
    raise PlatformError(
        f"the pyalloc crate was not found next to {__file__}: reinstall pyalloc "
        "(its package carries the crate) or load this module from a pyalloc checkout"
    )


def check_crate(manifest):
    """Checks with `cargo metadata` that the crate builds a static library
    and depends on pyalloc; returns its name."""
    import json

    try:
        process = _cargo.run_cargo(
            [_cargo.find_cargo(), "metadata", "--no-deps", "--format-version", "1", "--manifest-path", str(manifest)]
        )
    except _cargo.CargoError as error:
        raise PlatformError(str(error)) from None
    if process.returncode != 0:
        raise CompileError(f"cargo could not read {manifest}: fix the error it printed above")
    package = next(
        (p for p in json.loads(process.stdout)["packages"] if Path(p["manifest_path"]) == Path(manifest)), None
    )
    if package is None:
        raise CompileError(f"{manifest} is a workspace root, not a package: pass the crate's own Cargo.toml")
    library = next((t for t in package["targets"] if "lib" in t["kind"] or "staticlib" in t["kind"]), None)
    if library is None or "staticlib" not in library["crate_types"]:
        raise CompileError(
            f"the crate {package['name']} ({manifest}) builds no static library: "
            'add crate-type = ["staticlib"] to the [lib] section of its Cargo.toml'
        )
    if not any(dependency["name"] == "pyalloc" for dependency in package["dependencies"]):
        raise CompileError(
            f"the crate {package['name']} ({manifest}) does not depend on pyalloc: "
            'add pyalloc = "0.1" to its [dependencies]'
        )
    return package["name"]


def build_static_library(manifest, release, target_dir, name, features=(), patch_pyalloc=True):
    """Builds the crate `name` at `manifest` as a static library for the
    running interpreter (see `_cargo.build_static_library`), turning cargo's
    failures into setuptools' CompileError."""
    try:
        return _cargo.build_static_library(
            manifest,
            release=release,
            target_dir=target_dir,
            name=name,
            features=features,
            patch_pyalloc=pyalloc_crate_dir() if patch_pyalloc else None,
        )
    except _cargo.CargoError as error:
        raise CompileError(str(error)) from None


def default_target_dir(root):
    """cargo's target directory when CARGO_TARGET_DIR is not set: one per
    interpreter ABI (3.13 and 3.13t share a cache tag, not an SOABI)."""
    tag = sysconfig.get_config_var("SOABI") or sys.implementation.cache_tag
    return Path(root) / "target" / f"python-{tag}"


def build_profile(debug):
    profile = os.environ.get("PYALLOC_BUILD_PROFILE", "debug" if debug else "release")
    if profile not in ("release", "debug"):
        raise PlatformError(f"PYALLOC_BUILD_PROFILE must be 'release' or 'debug', not {profile!r}")
    return profile


def refuse_a_second_rust_library(extension):
    """Two Rust static libraries in one module clash (each carries the Rust
    standard library and its runtime symbols): refuse before building."""
    for other in extension.extra_objects:
        path = Path(other)
        if other == getattr(extension, "_pyalloc_rust_library", None):
            continue  # this crate's own archive, from an earlier run
        if path.suffix in (".a", ".lib") and path.is_file() and any(m in path.read_bytes() for m in _RUST_MARKERS):
            raise CompileError(
                f"{extension.name} would link two Rust static libraries ({path.name} and the crate at "
                f"{extension.cargo_manifest}), whose copies of the Rust runtime clash: "
                "build one crate that depends on both"
            )


def extension_link_flags(native_libs):
    """The native link flags for an extension module: cargo's list without
    libpython, which pyo3-ffi names for embedding programs. A module takes
    Python's symbols from the interpreter that loads it; linking libpython
    would load a second copy where Python is built without a shared one."""
    return [flag for flag in native_libs if not flag.startswith("-lpython")]


def link_static_library(extension, library, native_libs, include_dirs=()):
    """Adds a Rust static library, its link flags and headers to `extension`
    (once: a second `build_ext` run in the same process adds nothing)."""
    if str(library) in extension.extra_objects:
        return
    extension.extra_objects = [*extension.extra_objects, str(library)]
    extension.depends = [*extension.depends, str(library)]
    extension.include_dirs = [*extension.include_dirs, *include_dirs]
    extension.extra_link_args = [*extension.extra_link_args, *extension_link_flags(native_libs)]
    if sys.platform.startswith("linux"):
        # Keep Rust's symbols out of the module's dynamic symbol table.
        extension.extra_link_args.append("-Wl,--exclude-libs,ALL")


class RustStaticExtension(Extension):
    """A C extension linked with one cargo crate's static library.

    `cargo_manifest` is the path of the crate's ``Cargo.toml`` (or of its
    directory), relative to the directory of ``setup.py``. With
    `pyalloc_global_allocator` (the default) the crate gets pyalloc's
    `global-allocator` feature, which makes `pyalloc::PyAlloc` its global
    allocator; pass False to keep the crate's own, and every hand-off
    between Rust and C becomes a copy.
    """

    def __init__(self, name, sources, *args, cargo_manifest, pyalloc_global_allocator=True, **kwargs):
        if not isinstance(cargo_manifest, (str, os.PathLike)):
            raise TypeError(
                "cargo_manifest is the path of one Cargo.toml: link one crate per extension "
                "(two Rust static libraries in one extension clash)"
            )
        super().__init__(name, sources, *args, **kwargs)
        self.cargo_manifest = os.fspath(cargo_manifest)
        self.pyalloc_global_allocator = pyalloc_global_allocator


def resolve_manifest(extension):
    """The crate's Cargo.toml: the path given, or the Cargo.toml in the
    directory given."""
    manifest = Path(extension.cargo_manifest).resolve()
    if manifest.is_dir():
        manifest = manifest / "Cargo.toml"
    if not manifest.is_file():
        raise PlatformError(f"{extension.name}: cargo_manifest {manifest} does not exist: give the crate's Cargo.toml")
    return manifest


class build_ext(_build_ext):
    """build_ext that builds each RustStaticExtension's crate first."""

    def run(self):
        release = build_profile(self.debug) == "release"
        built = {}
        for extension in self.extensions:
            if not isinstance(extension, RustStaticExtension):
                continue
            manifest = resolve_manifest(extension)
            refuse_a_second_rust_library(extension)
            features = [GLOBAL_ALLOCATOR_FEATURE] if extension.pyalloc_global_allocator else []
            key = (manifest, tuple(features))
            if key not in built:
                name = check_crate(manifest)
                if not features:
                    print(
                        f"warning: {extension.name} links pyalloc's C API without PyAlloc as its global "
                        "allocator: every hand-off between Rust and C is a copy",
                        file=sys.stderr,
                    )
                built[key] = build_static_library(
                    manifest, release, default_target_dir(manifest.parent), name, features
                )
            link_static_library(extension, *built[key])
            extension._pyalloc_rust_library = str(built[key][0])
        super().run()
