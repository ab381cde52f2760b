"""The files of the pyalloc crate, as Cargo.toml's `package.include` names
them (plus Cargo.toml and Cargo.lock): the one list that the sdist, the copy
of the crate installed with the Python package, and `cargo package` share
(scripts/check-packaging.sh compares this list with cargo's)."""

import tomllib
from pathlib import Path


def include_patterns(root):
    return tomllib.loads((Path(root) / "Cargo.toml").read_text(encoding="utf-8"))["package"]["include"]


def crate_files(root):
    """Paths relative to `root`, sorted: each `/dir/` pattern's files (not
    caches), each other pattern as a glob; every pattern is anchored at
    `root` (a leading "/")."""
    root = Path(root)
    found = {"Cargo.toml", "Cargo.lock"}
    for anchored in include_patterns(root):
        if not anchored.startswith("/"):
            raise ValueError(f"Cargo.toml's include pattern {anchored!r} is not anchored with '/'")
        pattern = anchored[1:]
        if pattern.endswith("/"):
            matches = (path for path in (root / pattern).rglob("*") if path.is_file())
        else:
            matches = root.glob(pattern)
        found.update(
            path.relative_to(root).as_posix() for path in matches if "__pycache__" not in path.parts
        )
    return sorted(found)

