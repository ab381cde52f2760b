#!/usr/bin/env bash
# pyalloc's test command: formatting, lints, docs, then every Rust and C test
# once per CPython 3.9-3.13 that pyenv has (the machine's python3 alone where
# pyenv has none). Fails on the first failure; prints one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

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
    passed=$((passed + 1))
done

step "summary"
echo "CPython versions: ${passed} passed, 0 failed"
