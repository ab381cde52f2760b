#!/usr/bin/env bash
# pyalloc's test command: formatting, lints, docs; then, once per CPython
# 3.9-3.13 that pyenv has (the machine's python3 alone where pyenv has none),
# every Rust and C test and the Python suite in a fresh virtual environment;
# then both ends of the supported pyo3-ffi range, and the benchmark in its
# quick mode. Fails on the first failure;
# prints one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

step "the benchmark crate: cargo fmt --check, clippy -D warnings"
cargo fmt --manifest-path bench/Cargo.toml -- --check
cargo clippy --quiet --manifest-path bench/Cargo.toml --all-targets -- -D warnings

step "the examples' crates: cargo fmt --check"
cargo fmt --manifest-path examples/mixed_extension/rust/Cargo.toml -- --check
cargo fmt --manifest-path examples/pyo3_tracemalloc/Cargo.toml -- --check

# The newest installed patch release of each supported minor version.
interpreters=()
if command -v pyenv >/dev/null 2>&1; then
    for minor in 9 10 11 12 13; do
        version=$(pyenv versions --bare --skip-aliases 2>/dev/null | grep -E "^3\.${minor}\.[0-9]+$" | sort -V | tail -n 1 || true)
        if [ -n "$version" ]; then
            interpreters+=("$(pyenv prefix "$version")/bin/python3.${minor}")
        fi
    done
fi
if [ ${#interpreters[@]} -eq 0 ]; then
    interpreters+=("$(command -v python3)")
fi

passed=0
for python in "${interpreters[@]}"; do
    tag=$("$python" -c 'import sys; print("py%d%d" % sys.version_info[:2])')
    step "cargo test with $("$python" --version) ($python)"
    # A target directory per interpreter: pyo3-ffi rebuilds when PYO3_PYTHON
    # changes, so sharing one would rebuild everything on every switch.
    PYO3_PYTHON="$python" CARGO_TARGET_DIR="target/$tag" cargo test --no-fail-fast

    # The extension's static library: a release build for the newest
    # interpreter (what `pip install .` gives users); for the others a debug
    # build in the target directory above, which cargo mostly reuses.
    if [ "$python" = "${interpreters[-1]}" ]; then
        build_env=(PYALLOC_BUILD_PROFILE=release)
    else
        build_env=(PYALLOC_BUILD_PROFILE=debug "CARGO_TARGET_DIR=target/$tag")
    fi
    step "pip install . (${build_env[0]#*=}) and pytest with $("$python" --version), in a fresh virtual environment"
    venv="target/venv/$tag"
    "$python" -m venv --clear "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "setuptools>=64" wheel "pytest>=7"
    env "${build_env[@]}" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation .
    "$venv/bin/python" -m pytest -p no:cacheprovider python/tests

    step "examples/mixed_extension with $("$python" --version): pip install (pyalloc.setuptools), its tests"
    env "${build_env[@]}" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation ./examples/mixed_extension
    "$venv/bin/python" -m pytest -p no:cacheprovider examples/mixed_extension/tests
    passed=$((passed + 1))
done

newest="${interpreters[-1]}"
venv="target/venv/$("$newest" -c 'import sys; print("py%d%d" % sys.version_info[:2])')"
step "examples/pyo3_tracemalloc with and without pyalloc (maturin, $("$newest" --version))"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "maturin>=1,<2"
for features in "" "--no-default-features"; do
    # maturin's build backend runs `maturin` from PATH: the venv's.
    PATH="$PWD/$venv/bin:$PATH" MATURIN_PEP517_ARGS="$features" CARGO_TARGET_DIR=target/pyo3-example \
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation \
        --force-reinstall --no-deps ./examples/pyo3_tracemalloc
    "$venv/bin/python" -m pytest -p no:cacheprovider examples/pyo3_tracemalloc/tests
    "$venv/bin/python" examples/pyo3_tracemalloc/demo.py
done

step "python -m build: sdists, and wheels built from them, of pyalloc and of examples/mixed_extension ($("$newest" --version))"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "build>=1"
"$venv/bin/python" -m build --outdir target/dist . > target/dist.log 2>&1 || { tail -n 40 target/dist.log; exit 1; }
tail -n 1 target/dist.log
# A user's project the same way (pyalloc.setuptools from the installed pyalloc).
"$venv/bin/python" -m build --no-isolation --outdir target/dist examples/mixed_extension > target/dist.log 2>&1 \
    || { tail -n 40 target/dist.log; exit 1; }
tail -n 1 target/dist.log

step "a new user: examples/mixed_extension copied next to a fresh checkout; pip install . in a fresh environment"
# Outside this repository, so that nothing in it can be found by accident.
newuser=$(mktemp -d)
trap 'rm -rf "$newuser"' EXIT
mkdir -p "$newuser/pyalloc"
# The checkout: every file git tracks (or would), as the working tree has it.
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$newuser/pyalloc"
cp -r "$newuser/pyalloc/examples/mixed_extension" "$newuser/mixed_extension"
"$newest" -m venv "$newuser/venv"
"$newuser/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$newuser/mixed_extension" "pytest>=7"
(cd "$newuser/mixed_extension" && ../venv/bin/python -m pytest -p no:cacheprovider tests)

# pyo3-ffi's newest supported release is what Cargo.lock holds (the runs
# above); the oldest is what the PyO3 user crate in compat/ locks.
oldest=$(grep -A1 '^name = "pyo3-ffi"$' compat/pyo3-oldest/Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
step "pyalloc's tests on the oldest supported pyo3-ffi ($oldest)"
copy=target/compat/pyalloc-on-pyo3-ffi-oldest
mkdir -p "$copy"
cp -r Cargo.toml Cargo.lock build.rs cbindgen.toml README.md src tests c_tests include "$copy"/
(
    cd "$copy"
    cargo update --quiet -p pyo3-ffi --precise "$oldest"
    # The stress test ran in full above; here it only has to build and pass.
    PYALLOC_STRESS_OPS=400 CARGO_TARGET_DIR=../target cargo test --no-fail-fast
)

step "a PyO3 $oldest user crate with PyAlloc as its global allocator"
CARGO_TARGET_DIR=target/compat/target cargo test --manifest-path compat/pyo3-oldest/Cargo.toml

step "the benchmark, quick mode (it must build and run; its timings fail nothing)"
scripts/bench.sh --quick

step "summary"
echo "CPython versions: ${passed} passed, 0 failed"
