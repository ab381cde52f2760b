#!/usr/bin/env bash
# pyalloc's test command. Every check runs even when an earlier one fails
# (a check that uses another's output says so, or makes it itself); the
# summary counts them, and the exit status is non-zero if any failed.
# docs/TESTING.md says how long it takes and how to run a part of it. In
# order:
#
#   - the system packages the tests use (installed when missing);
#   - formatting, lints (default, no-default-features, every feature), docs,
#     src/'s structure (scripts/check-structure.py);
#   - the README's main job and commands as printed (a new user's install of
#     the example, alone, from a wheel directory);
#   - once per CPython 3.11-3.13 found (pyenv, else python3.X on PATH): every
#     Rust and C test, the Python suite and the mixed C/Rust example, in a
#     fresh virtual environment (the tools matrix, foreign allocators, ASan
#     and valgrind, and the full-length stress run on the oldest and the
#     newest CPython only);
#   - every C program on CPython 3.11's debug build (--with-pydebug);
#   - the same as for 3.11-3.13 for CPython 3.14 and 3.15, inside a Debian
#     testing root (scripts/forky-pythons.sh: their binaries need a newer
#     glibc);
#   - compile checks for CPython 3.14t and 3.15t (free-threaded), which
#     cannot run here, and 3.16, which the shims do not know (pyo3's
#     PYO3_CONFIG_FILE, no interpreter);
#   - aarch64 Linux run under qemu, and Windows and macOS compile checks
#     (scripts/cross-targets.sh, in a Debian testing root of its own);
#   - packaging: cargo package and publish --dry-run, python -m build, the
#     wheel's contents and platform tag, a minimal dependent's build graph
#     and an offline build of it from vendored sources;
#   - last, the PyO3 example, both ends of the pyo3-ffi range, and the
#     benchmark's quick mode.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

passed=0
failed=()
# check LABEL COMMAND...: runs one check and counts it; returns its status.
check() {
    local label=$1 start=$SECONDS status
    shift
    step "$label"
    # In a subshell with errexit: a check stops at its first failing command
    # (bash ignores errexit in a condition, hence no `if`).
    (set -e; "$@")
    status=$?
    echo "--- $label: $((SECONDS - start)) s"
    if [ $status -eq 0 ]; then
        passed=$((passed + 1))
    else
        echo "FAILED: $label" >&2
        failed+=("$label")
        return 1
    fi
}

check "system packages (Debian)" scripts/system-packages.sh

# The cross-platform step's root (scripts/cross-targets.sh setup: mostly
# downloads and unpacking, about 2 minutes when missing) is made in the
# background while the host checks run; its check below waits for it. Only
# after the host's own apt-get above: both may install debootstrap.
mkdir -p target
scripts/cross-targets.sh setup >target/cross-setup.log 2>&1 &
cross_setup=$!

lints() {
    cargo fmt --all -- --check
    cargo fmt --manifest-path bench/Cargo.toml -- --check
    cargo fmt --manifest-path examples/mixed_extension/rust/Cargo.toml -- --check
    cargo fmt --manifest-path examples/pyo3_tracemalloc/Cargo.toml -- --check
    cargo clippy --all-targets -- -D warnings
    cargo clippy --all-targets --no-default-features -- -D warnings
    cargo clippy --all-targets --features demo,testing -- -D warnings
    cargo clippy --lib --features global-allocator,demo,testing -- -D warnings
    cargo clippy --quiet --manifest-path bench/Cargo.toml --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
    python3 scripts/check-structure.py
}
check "cargo fmt, clippy -D warnings, cargo doc, src/'s structure" lints

# What a new user does, before any per-interpreter check: the set-up
# table's main job (which leaves .venv/ in the checkout, as it would for
# them; every check below runs after it), then the README's other commands,
# as printed.
check "the README's main job and commands, as printed" python3 scripts/readme_commands.py

interpreters=()
for minor in 11 12 13; do
    python=$(find_python "$minor")
    [ -n "$python" ] && interpreters+=("$python")
done
if [ ${#interpreters[@]} -eq 0 ]; then
    echo "no CPython 3.11-3.13 found" >&2
    failed+=("a CPython 3.11-3.13 to test with")
fi

# The per-interpreter checks. A forky interpreter (3.14, 3.15) runs inside
# the Debian testing root (scripts/forky-pythons.sh): every command of its
# checks goes through $run, which binds this checkout at its own path.
# Its target directories (target/py314, target/py315) are its own: a build
# there links against forky's glibc, so no host build may share them.
# The tests under tools run on the oldest and the newest CPython only: the
# C programs and the stress test under foreign allocators (jemalloc,
# tcmalloc, mimalloc preloaded), AddressSanitizer and valgrind. They check
# the same classification and heap code on every version and were most of
# each interpreter's `cargo test`; every version runs every program and
# test plainly and under CPython's debug hooks.
tools_matrix=(--skip foreign_allocators --skip asan --skip valgrind)
# interpreter_checks PYTHON PROFILE BUILD_DIR FOREIGN [RUN...]
# FOREIGN: "foreign" runs the matrix, anything else skips it.
interpreter_checks() {
    local python=$1 profile=$2 build_dir=$3 foreign=$4
    shift 4
    local -a run=("$@") skip=()
    # The same two interpreters run the stress test at full length; the
    # others a shorter run (PYALLOC_STRESS_OPS, passed into the root too).
    if [ "$foreign" != foreign ]; then
        skip=(-- "${tools_matrix[@]}")
        export PYALLOC_STRESS_OPS=500
    fi
    local tag version venv
    tag=$("${run[@]}" "$python" -c 'import sys; print("py%d%d" % sys.version_info[:2])')
    version=$("${run[@]}" "$python" --version)
    [ ${#run[@]} -gt 0 ] && version="$version (Debian testing root)"
    venv="target/venv/$tag"
    [ -n "$build_dir" ] || build_dir="target/$tag"
    # A target directory per interpreter: pyo3-ffi rebuilds when PYO3_PYTHON
    # changes, so sharing one would rebuild everything on every switch.
    export PYO3_PYTHON="$python" CARGO_TARGET_DIR="target/$tag"
    check "cargo test, $version${skip:+ (no tools matrix, a shorter stress run)}" "${run[@]}" cargo test --no-fail-fast "${skip[@]}"

    install_and_test() {
        "${run[@]}" "$python" -m venv --clear "$venv"
        "${run[@]}" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "setuptools>=64" wheel "pytest>=7"
        PYALLOC_BUILD_PROFILE=$profile CARGO_TARGET_DIR=$build_dir \
            "${run[@]}" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation .
        "${run[@]}" "$venv/bin/python" -m pytest -p no:cacheprovider python/tests
    }
    check "pip install . ($profile) and the Python suite, $version" install_and_test
    example() {
        PYALLOC_BUILD_PROFILE=$profile CARGO_TARGET_DIR=$build_dir \
            "${run[@]}" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation ./examples/mixed_extension
        "${run[@]}" "$venv/bin/python" -m pytest -p no:cacheprovider examples/mixed_extension/tests
    }
    check "examples/mixed_extension (pyalloc.setuptools), $version" example
    unset PYO3_PYTHON CARGO_TARGET_DIR PYALLOC_STRESS_OPS
}

for python in "${interpreters[@]}"; do
    # The extension: a release build for the newest interpreter (what
    # `pip install .` gives users); for the others a debug build in the
    # target directory of its cargo test, which cargo mostly reuses.
    foreign=no
    [ "$python" = "${interpreters[0]}" ] && foreign=foreign
    if [ "$python" = "${interpreters[-1]}" ]; then
        interpreter_checks "$python" release "target/$(python_tag "$python")-release" "$foreign"
    else
        interpreter_checks "$python" debug "" "$foreign"
    fi
done

# CPython's own assertions (Debian's python3.11-dbg, --with-pydebug) on
# every C program: they reject thread-state misuse that a release build
# lets through, before pyalloc is reached.
check "the C programs on CPython 3.11's debug build (--with-pydebug; no tools matrix)" \
    env PYO3_PYTHON=/usr/bin/python3.11-dbg CARGO_TARGET_DIR=target/py311d cargo test --test c_api \
    -- "${tools_matrix[@]}"

# CPython 3.14 and 3.15: Debian testing packages them, but its binaries need
# glibc 2.38, so they run in a forky root (made when missing: about 90 s and
# 855 MB at /opt/forky, or FORKY_ROOT; it needs root and a Debian mirror).
# No bytecode caches in the checkout (cargo package would take them).
forky=(scripts/forky-pythons.sh run -b "$PWD" -e PYTHONDONTWRITEBYTECODE=1 --)
forky_root() {
    if scripts/forky-pythons.sh ready; then
        echo "the root is ready"
    else
        scripts/forky-pythons.sh setup
    fi
    # What the tests need, found inside the root as on the host.
    "${forky[@]}" scripts/system-packages.sh
}
if check "a Debian testing root with CPython 3.14 and 3.15 (scripts/forky-pythons.sh)" forky_root; then
    interpreter_checks /usr/bin/python3.14 debug "" no "${forky[@]}"
    interpreter_checks /usr/bin/python3.15 debug "" foreign "${forky[@]}"
fi

newest=python3
[ ${#interpreters[@]} -gt 0 ] && newest="${interpreters[-1]}"
# The packaging check and the PyO3 example use the venv that the newest host
# interpreter's "pip install . and the Python suite" check made above.
newest_venv="$PWD/target/venv/$(python_tag "$newest")"

check "compile for CPython 3.14t, 3.15t (free-threaded) and 3.16 (unknown to the shims): cargo check and clippy, tests included" \
    scripts/check-unreleased-pythons.sh

# Other targets, in a Debian testing root of their own (/opt/forky-cross,
# made when missing: about 2 minutes and 3.3 GB; the whole check took
# 7.7 minutes from nothing, 2 minutes once built; see the script's header):
# aarch64 Linux built and run under qemu-user (CPython 3.13: the C programs
# in c_api.rs's modes, the allocator and stress tests), and cargo clippy -D
# warnings for x86_64-pc-windows-msvc, aarch64-apple-darwin and
# x86_64-apple-darwin (std built from source; without mimalloc, whose C
# needs those platforms' own compilers).
# `wait` here, in this shell: a check runs in a subshell, whose children the
# background setup is not.
cross_setup_status=0
wait "$cross_setup" || cross_setup_status=$?
cross_targets() {
    cat target/cross-setup.log
    [ "$1" -eq 0 ] || return "$1"
    scripts/cross-targets.sh all
}
check "aarch64 Linux under qemu, Windows and macOS compile checks (scripts/cross-targets.sh)" \
    cross_targets "$cross_setup_status"

check "packaging: cargo package, publish --dry-run, python -m build, wheel contents, auditwheel" \
    scripts/check-packaging.sh "$newest_venv/bin/python"

check "a minimal dependent: no cbindgen in its build graph, an offline build from vendored sources" \
    scripts/check-dependent.sh

pyo3_example() {
    "$newest_venv/bin/python" -m pip install --quiet --disable-pip-version-check "maturin>=1,<2"
    for features in "" "--no-default-features"; do
        # maturin's build backend runs `maturin` from PATH: the venv's.
        PATH="$newest_venv/bin:$PATH" MATURIN_PEP517_ARGS="$features" CARGO_TARGET_DIR=target/pyo3-example \
            "$newest_venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation \
            --force-reinstall --no-deps ./examples/pyo3_tracemalloc
        "$newest_venv/bin/python" -m pytest -p no:cacheprovider examples/pyo3_tracemalloc/tests
        "$newest_venv/bin/python" examples/pyo3_tracemalloc/demo.py
    done
}
check "examples/pyo3_tracemalloc with and without pyalloc (maturin)" pyo3_example

# pyo3-ffi's newest supported release is what Cargo.lock holds (the runs
# above); the oldest is what the PyO3 user crate in compat/ locks.
oldest=$(grep -A1 '^name = "pyo3-ffi"$' compat/pyo3-oldest/Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
oldest_pyo3_ffi() {
    # The crate as published, with pyo3-ffi pinned to the oldest. Packaged
    # here (unverified: the packaging check verifies it), so that this check
    # stands alone, whether or not the packaging check ran or passed.
    rm -rf target/compat/pyalloc-*/ target/package/pyalloc-*.crate
    cargo package --no-verify --allow-dirty --quiet
    mkdir -p target/compat
    # --touch: a .crate's files all carry one fixed 2006 timestamp, so cargo
    # would take the library built from an older package as up to date.
    tar --touch -xzf "$(ls target/package/pyalloc-*.crate)" -C target/compat
    cd target/compat/pyalloc-*/
    cargo update --quiet -p pyo3-ffi --precise "$oldest"
    # The stress test and the tools matrix ran in full above; here the
    # tests only have to build and pass.
    PYO3_PYTHON="$newest" PYALLOC_STRESS_OPS=400 CARGO_TARGET_DIR=../target cargo test --no-fail-fast \
        -- "${tools_matrix[@]}"
}
check "pyalloc's tests on the oldest supported pyo3-ffi ($oldest), from the packaged crate" oldest_pyo3_ffi
check "a PyO3 $oldest user crate with PyAlloc as its global allocator" \
    env PYO3_PYTHON="$newest" CARGO_TARGET_DIR=target/compat/target cargo test --manifest-path compat/pyo3-oldest/Cargo.toml

check "the benchmark, quick mode (it must build and run; its timings judge nothing)" scripts/bench.sh --quick

step "summary"
for label in "${failed[@]}"; do
    echo "failed: $label"
done
echo "${passed} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
