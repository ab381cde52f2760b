"""Builds a cargo crate as a static library and reads what cargo reports
about it: the archive, its native link flags, and the include directories
of the crate and of pyalloc. Standard library only, so that both
``pyalloc.setuptools`` and pyalloc's own C test runner (``tests/c_api.rs``,
which runs this file as a script) use the same code.

    python _cargo.py MANIFEST --target-dir DIR [--features A,B]

builds it in the debug profile and prints two lines: the archive's path and
its native link flags (separated by spaces).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

# What rustc says when a crate declares #[global_allocator] and pyalloc's
# `global-allocator` feature installs one too.
_ALLOCATOR_CONFLICT = "conflicts with global allocator in: pyalloc"


class CargoError(Exception):
    """A build that cannot go on, with one sentence that says what to do."""


def find_cargo():
    cargo = os.environ.get("CARGO") or shutil.which("cargo")
    if not cargo:
        raise CargoError("cargo was not found: install Rust (https://rustup.rs) or set CARGO to the cargo executable")
    return cargo


def run_cargo(command, env=None):
    try:
        return subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=False)
    except OSError as error:
        raise CargoError(f"could not run cargo ({command[0]}): {error}") from error


def build_static_library(manifest, *, release, target_dir, name, features=(), patch_pyalloc=None):
    """Builds the crate `name` at `manifest` as a static library for the
    running interpreter (PYO3_PYTHON), with `features` (which may name a
    dependency's, `pyalloc/global-allocator`). `patch_pyalloc`, a directory,
    is the pyalloc crate that a `pyalloc = "0.1"` dependency resolves to.

    Returns the archive's path, its native link flags, and the include
    directories: pyalloc's, and the crate's own `include/` and build-script
    `OUT_DIR` where they exist. Compiler messages are echoed to stderr."""
    manifest = Path(manifest).resolve()
    command = [
        find_cargo(), "rustc", "--lib", "--crate-type", "staticlib",
        "--manifest-path", str(manifest), "--message-format=json",
    ]
    if features:
        command += ["--features", ",".join(features)]
    if patch_pyalloc is not None:
        # A TOML basic string; JSON's escapes are TOML's as long as non-ASCII
        # characters stay themselves (JSON would write surrogate pairs).
        path = json.dumps(str(patch_pyalloc), ensure_ascii=False)
        command += ["--config", f"patch.crates-io.pyalloc.path={path}"]
    if release:
        command.append("--release")
    command += ["--", "--print", "native-static-libs"]
    env = dict(os.environ)
    # The library must be built for the interpreter that runs this build.
    env["PYO3_PYTHON"] = sys.executable
    env.setdefault("CARGO_TARGET_DIR", str(target_dir))
    print(f"building the Rust static library of {name}: " + " ".join(command), file=sys.stderr, flush=True)
    process = run_cargo(command, env)

    library = native_libs = package_id = None
    conflict = False
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
                library = next((f for f in message["filenames"] if f.endswith((".a", ".lib"))), None)
        elif reason == "compiler-artifact" and message["target"]["name"] == "pyalloc":
            include_dirs.append(str(Path(message["manifest_path"]).parent / "include"))
        elif reason == "build-script-executed":
            out_dirs[message["package_id"]] = message["out_dir"]
        elif reason == "compiler-message":
            rendered = message["message"].get("rendered") or ""
            conflict = conflict or _ALLOCATOR_CONFLICT in rendered
            if "native-static-libs:" in rendered:
                native_libs = rendered.split("native-static-libs:", 1)[1].split()
                # Links pyalloc's load-time constructor, which no code names
                # (src/capi.rs, start_lifetime_on_load): GNU ld and Apple's
                # ld take -u (Mach-O symbols carry a leading underscore);
                # Windows has no such constructor.
                if sys.platform.startswith("linux"):
                    native_libs.append("-Wl,-u,pyalloc_start_lifetime_on_load")
                elif sys.platform == "darwin":
                    native_libs.append("-Wl,-u,_pyalloc_start_lifetime_on_load")
            elif "Link against the following native artifacts" not in rendered:
                sys.stderr.write(rendered)
    if process.returncode != 0:
        if conflict:
            raise CargoError(
                f"the crate {name} declares its own #[global_allocator], and pyalloc's global-allocator "
                "feature installs PyAlloc: remove the crate's declaration"
            )
        raise CargoError(f"cargo failed to build the static library of {name}: fix the errors it printed above")
    if library is None or native_libs is None:
        raise CargoError(f"cargo built {name} but did not report the static library and its link flags")
    for own in (manifest.parent / "include", out_dirs.get(package_id)):
        if own is not None and Path(own).is_dir() and str(own) not in include_dirs:
            include_dirs.append(str(own))
    return Path(library), native_libs, include_dirs


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Build a crate as a debug static library; print the archive and its native link flags."
    )
    parser.add_argument("manifest")
    parser.add_argument("--target-dir", required=True)
    parser.add_argument("--features", default="")
    args = parser.parse_args(argv)
    features = [feature for feature in args.features.split(",") if feature]
    try:
        library, native_libs, _ = build_static_library(
            args.manifest,
            release=False,
            target_dir=args.target_dir,
            name=Path(args.manifest).resolve().parent.name,
            features=features,
        )
    except CargoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(library)
    print(" ".join(native_libs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
