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
depends on ``pyalloc = "0.1"``, which installs ``pyalloc::PyAlloc`` as its
global allocator (or declares it itself with ``default-features = false``).
``build_ext`` builds it with cargo inside the build step for the running
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

This module needs only the standard library and setuptools, so a ``setup.py``
may also load it from a pyalloc checkout by path.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension
from setuptools.command.build_ext import build_ext as _build_ext
from setuptools.errors import CompileError, PlatformError

__all__ = ["RustStaticExtension", "build_ext"]

# Symbols every Rust static library carries; two archives that both define
# them cannot be linked into one module.
_RUST_MARKERS = (b"rust_eh_personality", b"__rust_alloc_error_handler")


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


def find_cargo():
    cargo = os.environ.get("CARGO") or shutil.which("cargo")
    if not cargo:
        raise PlatformError(
            "cargo was not found: install Rust (https://rustup.rs) or set CARGO to the cargo executable"
        )
    return cargo


def _run_cargo(command, env=None):
    try:
        return subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=False)
    except OSError as error:
        raise PlatformError(f"could not run cargo ({command[0]}): {error}") from error


def check_crate(manifest):
    """Checks with `cargo metadata` that the crate builds a static library
    and depends on pyalloc; returns its name."""
    process = _run_cargo(
        [find_cargo(), "metadata", "--no-deps", "--format-version", "1", "--manifest-path", str(manifest)]
    )
    if process.returncode != 0:
        raise CompileError(f"cargo failed to read the crate at {manifest} (its error is above): fix its Cargo.toml")
    package = next(
        (p for p in json.loads(process.stdout)["packages"] if Path(p["manifest_path"]) == Path(manifest)), None
    )
    if package is None:
        raise CompileError(f"{manifest} is not a package's Cargo.toml (a workspace root?): name the crate's own")
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


def build_static_library(manifest, release, target_dir, name, patch_pyalloc=True):
    """Builds the crate `name` at `manifest` as a static library for the
    running interpreter. Returns the archive's path, its native link flags,
    and the include directories: pyalloc's, and the crate's own `include/`
    and build-script `OUT_DIR` where they exist."""
    manifest = Path(manifest).resolve()
    command = [
        find_cargo(), "rustc", "--lib", "--crate-type", "staticlib",
        "--manifest-path", str(manifest), "--message-format=json",
    ]
    if patch_pyalloc:
        crate = pyalloc_crate_dir()
        # A TOML basic string; JSON's escapes are TOML's as long as non-ASCII
        # characters stay themselves (JSON would write surrogate pairs).
        command += ["--config", f"patch.crates-io.pyalloc.path={json.dumps(str(crate), ensure_ascii=False)}"]
    if release:
        command.append("--release")
    command += ["--", "--print", "native-static-libs"]
    env = dict(os.environ)
    # The library must be built for the interpreter that runs this build.
    env["PYO3_PYTHON"] = sys.executable
    env.setdefault("CARGO_TARGET_DIR", str(target_dir))
    print(f"building the Rust static library of {name}: " + " ".join(command), flush=True)
    process = _run_cargo(command, env)

    library = None
    native_libs = None
    package_id = None
    out_dirs = {}
    include_dirs = []
    for line in process.stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        reason = message.get("reason")
        if reason == "compiler-artifact" and Path(message["manifest_path"]) == manifest:
            package_id = message["package_id"]
            if "staticlib" in message["target"]["crate_types"]:
                library = next((name for name in message["filenames"] if name.endswith((".a", ".lib"))), None)
        elif reason == "compiler-artifact" and message["target"]["name"] == "pyalloc":
            include_dirs.append(str(Path(message["manifest_path"]).parent / "include"))
        elif reason == "build-script-executed":
            out_dirs[message["package_id"]] = message["out_dir"]
        elif reason == "compiler-message":
            rendered = message["message"].get("rendered") or ""
            if "native-static-libs:" in rendered:
                native_libs = rendered.split("native-static-libs:", 1)[1].split()
            elif "Link against the following native artifacts" not in rendered:
                sys.stderr.write(rendered)
    if process.returncode != 0:
        raise CompileError(
            f"cargo failed to build the static library of {name} (its errors are above); "
            "fix them, or update Rust with `rustup update`"
        )
    if library is None or native_libs is None:
        raise CompileError(f"cargo built {name} but did not report the static library and its link flags")
    for own in (manifest.parent / "include", out_dirs.get(package_id)):
        if own is not None and Path(own).is_dir() and str(own) not in include_dirs:
            include_dirs.append(str(own))
    return Path(library), native_libs, include_dirs


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
        if path.suffix == ".a" and path.is_file() and any(m in path.read_bytes() for m in _RUST_MARKERS):
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

    `cargo_manifest` is the path of the crate's ``Cargo.toml``, relative to
    the directory of ``setup.py``.
    """

    def __init__(self, name, sources, *args, cargo_manifest, **kwargs):
        if not isinstance(cargo_manifest, (str, os.PathLike)):
            raise TypeError(
                "cargo_manifest is the path of one Cargo.toml: link one crate per extension "
                "(two Rust static libraries in one extension clash)"
            )
        super().__init__(name, sources, *args, **kwargs)
        self.cargo_manifest = os.fspath(cargo_manifest)


class build_ext(_build_ext):
    """build_ext that builds each RustStaticExtension's crate first."""

    def run(self):
        release = build_profile(self.debug) == "release"
        built = {}
        for extension in self.extensions:
            if not isinstance(extension, RustStaticExtension):
                continue
            manifest = Path(extension.cargo_manifest).resolve()
            if not manifest.is_file():
                raise PlatformError(f"{extension.name}: cargo_manifest {manifest} does not exist")
            refuse_a_second_rust_library(extension)
            if manifest not in built:
                name = check_crate(manifest)
                built[manifest] = build_static_library(manifest, release, default_target_dir(manifest.parent), name)
            link_static_library(extension, *built[manifest])
            extension._pyalloc_rust_library = str(built[manifest][0])
        super().run()
