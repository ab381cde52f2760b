#!/usr/bin/env bash
# Compiles pyalloc, tests included, for CPythons that cannot be installed
# here (the free-threaded builds 3.14t and 3.15t: no distribution this
# machine reaches packages one) through pyo3's PYO3_CONFIG_FILE, which
# describes an interpreter without running one: the version shims in
# src/cpython/ are at least type-checked for each. 3.14 and 3.15 themselves
# run every test (scripts/test.sh, in a Debian testing root). 3.16, which
# does not exist yet, stands for a version the shims do not know: there
# pyalloc reads no CPython layout itself (cfg pyalloc_py316), and this is
# where that path compiles.
set -euo pipefail
cd "$(dirname "$0")/.."

configs=target/pyo3-configs
mkdir -p "$configs"
for python in 3.14t 3.15t 3.16; do
    version=${python%t}
    flags=""
    [ "$python" != "$version" ] && flags=Py_GIL_DISABLED
    cat > "$configs/$python.txt" <<CONFIG
implementation=CPython
version=$version
shared=true
abi3=false
lib_name=python$python
lib_dir=/nonexistent/lib
pointer_width=64
build_flags=$flags
suppress_build_script_link_lines=false
CONFIG
    echo "CPython $python${flags:+ ($flags)}"
    export PYO3_CONFIG_FILE="$PWD/$configs/$python.txt" CARGO_TARGET_DIR="target/check-$python"
    cargo check --quiet --all-targets --features demo,testing
    cargo clippy --quiet --all-targets --features demo,testing -- -D warnings
    cargo clippy --quiet --lib --no-default-features -- -D warnings
done
