#!/usr/bin/env bash
# cross-targets.sh: pyalloc on targets this x86-64 Debian machine is not:
# built and run on aarch64 Linux under qemu-user, and compile-checked
# (`cargo clippy -D warnings`, which includes `cargo check`) for
# x86_64-pc-windows-msvc, aarch64-apple-darwin and x86_64-apple-darwin.
# Root, no network but the package registries. scripts/test.sh runs
# `cross-targets.sh all` as one check.
#
# How (each choice is what was seen to work):
# - Everything runs in a Debian forky (testing) root made by
#   scripts/forky-pythons.sh with FORKY_RUST=debian and FORKY_MINIMAL=1 (no
#   amd64 interpreters or test tools; a root of its own,
#   CROSS_ROOT, not test.sh's /opt/forky): forky's own rustc, cargo and
#   clippy, because the Debian packages that add targets must be of the
#   very same version as rustc: libstd-rust-dev:arm64 (multiarch) for
#   aarch64, rust-src for -Zbuild-std. rustup toolchains have neither and
#   cannot download them here.
# - aarch64 Linux: `dpkg --add-architecture arm64` in the root, then
#   libstd-rust-dev:arm64, libc6-dev:arm64, libpython3.X-dev:arm64 (the
#   headers, libpython3.X.so and the standard library for aarch64),
#   gcc-aarch64-linux-gnu (C compiler and linker) and qemu-user (static
#   qemu-aarch64; no binfmt is needed: programs are started as
#   `qemu-aarch64 PROGRAM`, and the root's / holds the aarch64 loader and
#   libraries through multiarch). pyo3-ffi is told about the interpreter with
#   a PYO3_CONFIG_FILE (there is no aarch64 python executable to ask). Built:
#   the static library with the features the C tests use; the C programs
#   (and copy_module.c as twelve shared copies, for copies.c and unload.c)
#   compiled and linked as tests/c_api.rs does (same flags, same link line);
#   each program run under qemu in the PYTHONMALLOC modes and options
#   c_api.rs runs it with (`runs_of` below mirrors it); and `cargo test`
#   of the Rust tests that need no child process of the test binary
#   (allocator, and stress's in-process run) with qemu-aarch64 as the target
#   runner. Not run under qemu: AddressSanitizer, valgrind and the foreign
#   allocators (host-only tools), the tests that re-run the test binary as a
#   child (no binfmt: a child execve of an aarch64 binary fails), and the
#   Python suite (no aarch64 python executable in the root).
# - Windows (MSVC) and macOS: Debian has no std for them, so std is built
#   from forky's rust-src with RUSTC_BOOTSTRAP=1 and
#   `-Zbuild-std=std,panic_abort`, in check mode (no linker needed). The
#   default `mimalloc` feature compiles C with the target's own compiler
#   (MSVC's cl; Apple's clang and SDK), which this root has not, so both
#   are checked with --no-default-features only. windows-gnu is not a
#   target: it has no native thread-locals, so std's `thread_local!` would
#   allocate through pyalloc itself (src/sys/mod.rs refuses it). The mingw
#   packages stay in the root for now (they were needed for windows-gnu).
#   Nothing is linked or run for these targets.
# - Any failure counts: a build, a program, a test, or a clippy diagnostic
#   (warnings are denied) in pyalloc's own sources on any target.
#
# Measured (2 cores shared with other work, load 2-3; forky's rustc 1.97.1,
# qemu 11.1.2, CPython 3.13.15 for arm64): `all` from nothing (no root, no
# CROSS_WORK) 7 min 39 s: setup 108 s, then the two lanes (the std builds
# ~100 s per check target, aarch64's test binaries 94 s, the C programs'
# qemu runs 68 s in all, allocator 26 s, stress 27 s); again, everything
# built, 2 min 3 s.
#
# Usage (as root):
#   cross-targets.sh [all]      setup, then aarch64 beside windows + macos
#   cross-targets.sh setup      make or complete the root (idempotent)
#   cross-targets.sh aarch64 | windows | macos    one part (setup first)
# Each step prints its wall-clock time; a summary ends the run, and cargo's
# and the programs' full output stays in CROSS_WORK/logs. Exit status: 0
# when every step ran and passed; 1 when one failed.
#
# Environment:
#   CROSS_ROOT      the forky root (default /opt/forky-cross; 3.3 GB, made
#                   by forky-pythons.sh setup in about 2 minutes)
#   CROSS_SRC       the pyalloc checkout to test (default: the current
#                   directory): its working tree (tracked and untracked, not
#                   ignored, files) is copied to CROSS_WORK/src; only read
#   CROSS_WORK      where the copy, the cargo target directories (target/linux
#                   for aarch64, ~0.6 GB; target/build-std-TARGET for the
#                   checks, ~0.5 GB each) and the logs go (default
#                   /tmp/cross-targets)
#   CROSS_PYTHON    the aarch64 CPython, a plain minor (default 3.13; 3.14
#                   works too; run `setup` after changing it). 3.13 is the
#                   oldest whose quick read of the main GIL (_PyRuntime's
#                   published debug offsets) runs on aarch64; 3.11 and 3.12
#                   have no published offsets, and forky has neither
#   CROSS_PROGRAMS  c_tests/ programs to build and run under qemu (default:
#                   see DEFAULT_PROGRAMS), each in c_api.rs's modes
#   CROSS_TEST_OPS  PYALLOC_TEST_OPS for the programs (default 40; empty:
#                   their own default, 400)
#   CROSS_RUST_TESTS  the Rust tests run under qemu (default "allocator stress")
#   CROSS_STRESS_OPS  PYALLOC_STRESS_OPS for stress (default 150)
#   CROSS_CHECK_PYTHONS   CPython versions each target's first check
#                   (--lib, default features on Windows, none on macOS) uses
#                   (default "3.11 3.13": 3.11's thread identity and GIL
#                   layout, 3.13's published offsets; e.g. "3.11 3.12 3.13
#                   3.14 3.14t"); the other checks use 3.13
#   CROSS_MACS      the macOS targets of a `macos` part (default both)
#   CROSS_JOBS      CARGO_BUILD_JOBS (default 1: `all` runs aarch64 beside the
#                   Windows and macOS checks, a lane per core); builds run
#                   under nice -n 10
#   FORKY_PYTHONS   forky-pythons.sh (default: beside this script)
#
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
ROOT=${CROSS_ROOT:-/opt/forky-cross}
SRC=${CROSS_SRC:-$(pwd)}
WORK=${CROSS_WORK:-/tmp/cross-targets}
PY=${CROSS_PYTHON:-3.13}
# The programs that exercise each platform-specific piece, within the test
# command's time: exchange (the cookie, both families, hand-offs, fork),
# layout (the thread-state offsets and the 3.13 quick read confirmed),
# thread_states (thread identity), copies (twelve copies agree on the
# cookie), unload (pinning against dlclose), thread_exit (pthread keys).
# The rest of c_api.rs's programs run too when named in CROSS_PROGRAMS
# (lifecycle subinterpreters out_of_memory finalization foreign_blocks
# tracemalloc; tracemalloc's cases need 3.15, below it only shows the
# option is off).
DEFAULT_PROGRAMS="exchange layout thread_states copies unload thread_exit"
PROGRAMS=${CROSS_PROGRAMS:-$DEFAULT_PROGRAMS}
RUST_TESTS=${CROSS_RUST_TESTS:-allocator stress}
# Rounds per demo worker in exchange.c (its default 400; valgrind's run asks
# for 60): under qemu they are most of its time (a run took 5 s with 10
# rounds, 23 s with 100). Empty: the program's default.
TEST_OPS=${CROSS_TEST_OPS-40}
# Operations per stress thread (stress's default 2000; 500 took 93 s).
STRESS_OPS=${CROSS_STRESS_OPS:-150}
CHECK_PYTHONS=${CROSS_CHECK_PYTHONS:-3.11 3.13}
JOBS=${CROSS_JOBS:-1}
FORKY_PYTHONS=${FORKY_PYTHONS:-$(dirname "$SELF")/forky-pythons.sh}

# The forky packages (amd64) this needs besides forky-pythons.sh's own.
HOST_PACKAGES="rust-src rust-clippy gcc-aarch64-linux-gnu qemu-user binutils-mingw-w64-x86-64 gcc-mingw-w64-x86-64-posix"
A64=aarch64-unknown-linux-gnu
WIN=x86_64-pc-windows-msvc
# The macOS targets a `macos` part checks (`all` splits them over its lanes).
MACS=${CROSS_MACS:-aarch64-apple-darwin x86_64-apple-darwin}

say() { echo "cross-targets: $*"; }
die() {
    echo "cross-targets: error: $*" >&2
    exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }'; }

# record PART NAME RESULT SECONDS [DETAIL]: one line of the final summary.
record() {
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >>"$WORK/summary.tsv"
    printf 'cross-targets: %-8s %-62s %-8s %5s s %s\n' "$1" "$2" "$3" "$4" "${5:-}"
}

# ---------------------------------------------------------------------------
# Inside the root (run as `cross-targets.sh __inner PART` through
# forky-pythons.sh, with CROSS_WORK bound at the same path).

# The PYO3_CONFIG_FILE for CPython VERSION (3.13, 3.14t...) on TARGET.
pyo3_config() {
    local target=$1 version=$2 minor flags="" lib_name lib_dir=""
    minor=${version%t}
    [ "$version" != "$minor" ] && flags=Py_GIL_DISABLED
    case "$target" in
        *windows*) lib_name=python${version//./} ;;
        *) lib_name=python$version ;;
    esac
    [ "$target" = "$A64" ] && lib_dir="lib_dir=/usr/lib/aarch64-linux-gnu"
    local file=$WORK/pyo3/$target-$version.txt
    mkdir -p "$WORK/pyo3"
    # Written to a temporary file and moved only when it differs: pyo3's
    # build script reruns when the file changes.
    cat >"$file.new" <<CONFIG
implementation=CPython
version=$minor
shared=true
abi3=false
lib_name=$lib_name
${lib_dir}
pointer_width=64
build_flags=$flags
suppress_build_script_link_lines=false
CONFIG
    sed -i '/^$/d' "$file.new"
    if cmp -s "$file.new" "$file"; then
        rm -f "$file.new"
    else
        mv "$file.new" "$file"
    fi
    echo "$file"
}

# timed PART NAME LOG CMD...: runs CMD (output to LOG), records the result.
# Returns CMD's status.
timed() {
    local part=$1 name=$2 log=$3 start rc=0
    shift 3
    start=$(now)
    "$@" >"$log" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        record "$part" "$name" ok "$(elapsed "$start")"
    else
        record "$part" "$name" "FAILED" "$(elapsed "$start")" "exit $rc, see $log"
    fi
    return "$rc"
}

# runs_of PROGRAM: one line per run, as tests/c_api.rs runs PROGRAM: the
# PYTHONMALLOC mode ("default": unset), then NAME=VALUE settings.
runs_of() {
    case "$1" in
        exchange | lifecycle | subinterpreters | out_of_memory) printf '%s\n' default debug malloc_debug ;;
        layout) echo default ;;
        thread_states | finalization | copies | unload) printf '%s\n' default debug ;;
        tracemalloc) printf '%s\n' "default PYALLOC_TRACEMALLOC=1" "default PYALLOC_TRACEMALLOC=0" \
            "debug PYALLOC_TRACEMALLOC=1" "debug PYALLOC_TRACEMALLOC=0" ;;
        # foreign_blocks, then header_adding_pymem_hook's runs of it.
        foreign_blocks) printf '%s\n' default "default PYALLOC_TEST_HOOK=8" "debug PYALLOC_TEST_HOOK=8" \
            "malloc PYALLOC_TEST_HOOK=8" "default PYALLOC_TEST_HOOK=16" "debug PYALLOC_TEST_HOOK=16" \
            "malloc PYALLOC_TEST_HOOK=16" ;;
        thread_exit) printf '%s\n' default "default PYALLOC_PRIVATE_HEAP=system" ;;
        *) return 1 ;;
    esac
}

# cc_aarch64 LOG SOURCE OUTPUT EXTRA...: compiles c_tests/SOURCE.c and links
# it as tests/c_api.rs does (cc's flags for opt level 1 with debug info,
# -Werror, the header, the archive, libpython, rpath, the native libraries).
cc_aarch64() {
    local log=$1 source=$2 output=$3
    shift 3
    # shellcheck disable=SC2086 # NATIVE: cargo's flags, split
    timed aarch64 "compile c_tests/$source.c" "$log" \
        aarch64-linux-gnu-gcc -O1 -g -ffunction-sections -fdata-sections -fPIC \
        -std=c11 -Wall -Wextra -Werror -pthread -DPYALLOC_DEMO -DPYALLOC_TESTING \
        -I include -I "/usr/include/python$PY" "c_tests/$source.c" -o "$output" "$LIB" \
        -L/usr/lib/aarch64-linux-gnu "-lpython$PY" -Wl,-rpath,/usr/lib/aarch64-linux-gnu $NATIVE "$@"
}

inner_aarch64() {
    local failed=0 cfg out program run mode settings start rc cases tag copy
    cfg=$(pyo3_config "$A64" "$PY")
    export PYO3_CONFIG_FILE=$cfg
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    cd "$WORK/src"

    # The static library, as python/pyalloc/_cargo.py builds it for the C
    # tests (cargo replays the native-static-libs note when it is fresh).
    timed aarch64 "static library (CPython $PY, global-allocator,demo,testing)" "$WORK/logs/aarch64-staticlib.log" \
        nice -n 10 cargo rustc --lib --crate-type staticlib --target "$A64" \
        --features global-allocator,demo,testing --message-format=short -- --print native-static-libs ||
        return 1
    LIB=$CARGO_TARGET_DIR/$A64/debug/libpyalloc.a
    NATIVE=$(sed -n 's/.*native-static-libs: //p' "$WORK/logs/aarch64-staticlib.log" | tail -n 1)
    if [ ! -f "$LIB" ] || [ -z "$NATIVE" ]; then
        record aarch64 "static library's archive and link flags" FAILED 0 "no $LIB or no native-static-libs line"
        return 1
    fi

    out=$WORK/c-aarch64
    rm -rf "$out"
    mkdir -p "$out"
    # copies.c and unload.c load twelve copies of pyalloc, each hidden in its
    # own shared object, as c_api.rs's build_copies makes them.
    case " $PROGRAMS " in
        *" copies "* | *" unload "*)
            if cc_aarch64 "$WORK/logs/aarch64-cc-copy_module.log" copy_module "$out/libcopy_module.so" \
                -shared -fPIC -Wl,--exclude-libs,ALL; then
                for copy in 00 01 02 03 04 05 06 07 08 09 10 11; do
                    cp "$out/libcopy_module.so" "$out/libcopy_$copy.so"
                done
            else
                failed=1
            fi
            ;;
    esac
    # Each program in each of its runs, as c_api.rs's Run::run: PYTHONHOME,
    # PYALLOC_TEST_PROGRAMS, no inherited PYTHONMALLOC/PYTHONPATH/LD_PRELOAD,
    # a timeout, a zero exit and at least one "ok " line.
    for program in $PROGRAMS; do
        if ! runs_of "$program" >/dev/null; then
            record aarch64 "c_tests/$program.c" FAILED 0 "no runs known for it (runs_of)"
            failed=1
            continue
        fi
        cc_aarch64 "$WORK/logs/aarch64-cc-$program.log" "$program" "$out/$program" -ldl || {
            failed=1
            continue
        }
        while read -r mode settings; do
            tag=$program-$mode${settings:+-${settings// /,}}
            start=$(now)
            rc=0
            (
                cd "$out"
                unset PYTHONMALLOC PYTHONPATH LD_PRELOAD
                [ "$mode" = default ] || export PYTHONMALLOC=$mode
                # shellcheck disable=SC2086 # NAME=VALUE words
                [ -z "$TEST_OPS" ] || export PYALLOC_TEST_OPS=$TEST_OPS
                env PYTHONHOME=/usr PYALLOC_TEST_PROGRAMS="$out" $settings \
                    timeout 600 nice -n 10 qemu-aarch64 "./$program" </dev/null
            ) >"$WORK/logs/aarch64-run-$tag.out" 2>"$WORK/logs/aarch64-run-$tag.err" || rc=$?
            cases=$(grep -c '^ok ' "$WORK/logs/aarch64-run-$tag.out" || true)
            if [ "$rc" -eq 0 ] && [ "$cases" -gt 0 ]; then
                record aarch64 "qemu-aarch64 $program, PYTHONMALLOC=$mode${settings:+ $settings}" ok "$(elapsed "$start")" "$cases cases ok"
            else
                record aarch64 "qemu-aarch64 $program, PYTHONMALLOC=$mode${settings:+ $settings}" FAILED "$(elapsed "$start")" \
                    "exit $rc, $cases cases ok, see $WORK/logs/aarch64-run-$tag.{out,err}"
                failed=1
            fi
        done < <(runs_of "$program")
    done

    # The Rust tests, run by cargo through qemu-aarch64; they embed
    # libpython (rpath from build.rs) and find its home as /usr. stress: its
    # in-process run only (the others re-run the binary as a child process).
    local -a tests=()
    local test
    for test in $RUST_TESTS; do tests+=(--test "$test"); done
    [ ${#tests[@]} -gt 0 ] || return "$failed"
    timed aarch64 "cargo test ${tests[*]}: build" "$WORK/logs/aarch64-test-build.log" \
        nice -n 10 cargo test --target "$A64" "${tests[@]}" --no-run --message-format=short || return 1
    for test in $RUST_TESTS; do
        local -a filter=()
        [ "$test" = stress ] && filter=(-- --exact stress)
        if timed aarch64 "cargo test --test $test ${filter[*]}: run under qemu-aarch64" "$WORK/logs/aarch64-test-run-$test.log" \
            env PYTHONHOME=/usr PYALLOC_STRESS_OPS="$STRESS_OPS" nice -n 10 cargo test --target "$A64" --test "$test" "${filter[@]}"; then
            # A run that ran nothing passed nothing.
            if grep -q '^test result: ok\. [1-9]' "$WORK/logs/aarch64-test-run-$test.log"; then
                say "  $test: $(grep '^test result:' "$WORK/logs/aarch64-test-run-$test.log" | tail -n 1)"
            else
                record aarch64 "cargo test --test $test ran tests" FAILED 0 "no test passed, see $WORK/logs/aarch64-test-run-$test.log"
                failed=1
            fi
        else
            failed=1
        fi
    done
    return "$failed"
}

# check_one PART TARGET VERSION ARGS...: one `cargo clippy -Zbuild-std ...
# -- -D warnings` (which checks, then lints pyalloc's own code); pyalloc's
# diagnostics go to CROSS_WORK/errors/. Any failure counts.
check_one() {
    local part=$1 target=$2 version=$3 start rc=0 log name diag
    shift 3
    local -a allow=()
    name="$target, CPython $version: cargo clippy $* -- -D warnings"
    log=$WORK/logs/check-$target-$version-$(echo "$*" | tr -c 'a-z0-9' '_').log
    start=$(now)
    (
        cd "$WORK/src"
        # A target directory per target: two lanes may check at once.
        export CARGO_TARGET_DIR=$WORK/target/build-std-$target
        PYO3_CONFIG_FILE=$(pyo3_config "$target" "$version") RUSTC_BOOTSTRAP=1 \
            nice -n 10 cargo clippy -Zbuild-std=std,panic_abort --target "$target" --message-format=short "$@" -- -D warnings "${allow[@]}"
    ) >"$log" 2>&1 || rc=$?
    # pyalloc's diagnostics: short-format lines that name its own files.
    mkdir -p "$WORK/errors"
    diag=$WORK/errors/$(basename "$log" .log).txt
    grep -E '^(src|tests|build\.rs|examples|benches)[^ ]*:[0-9]+:[0-9]+: (error|warning)' "$log" | sort -u >"$diag" || true
    if [ "$rc" -eq 0 ] && [ ! -s "$diag" ]; then
        record "$part" "$name" ok "$(elapsed "$start")"
        return 0
    fi
    record "$part" "$name" "FAILED" "$(elapsed "$start")" "exit $rc, $(wc -l <"$diag") of pyalloc's diagnostics, see $log"
    sed 's/^/cross-targets:     /' "$diag"
    grep -E '^error|error occurred' "$log" | head -n 5 | sed 's/^/cross-targets:     /' || true
    return 1
}

# inner_checks PART TARGET... with the argument sets of that part.
inner_checks() {
    local part=$1 failed=0 target version set
    shift
    local -a sets
    # Without default features: mimalloc's C needs the target's own C
    # compiler (MSVC's cl, Apple's clang and SDK), which this root has not.
    sets=("--lib --no-default-features" "--lib --no-default-features --features global-allocator,demo,testing" "--all-targets --no-default-features --features demo,testing")
    for target in "$@"; do
        for set in "${sets[@]}"; do
            # The tests and examples once per OS: x86-64 macOS differs from
            # arm64 macOS in no cfg of theirs, and checking them builds
            # the dev-dependencies (cbindgen, syn) for the target.
            [ "$target" = x86_64-apple-darwin ] && [ "${set%% *}" = --all-targets ] && continue
            # The first set: each of CROSS_CHECK_PYTHONS; the others: 3.13.
            local versions=3.13
            [ "$set" = "${sets[0]}" ] && versions=$CHECK_PYTHONS
            for version in $versions; do
                # shellcheck disable=SC2086
                check_one "$part" "$target" "$version" $set || failed=1
            done
        done
    done
    return "$failed"
}

inner() {
    local part=$1
    export CARGO_BUILD_JOBS=$JOBS
    mkdir -p "$WORK/logs"
    # Target directories of their own for the -Zbuild-std checks (one per
    # target, `check_one`): they run with RUSTC_BOOTSTRAP=1, which changes
    # how the host's build-script and proc-macro crates are built; sharing
    # aarch64's directory rebuilt them on every switch.
    case "$part" in
        aarch64)
            export CARGO_TARGET_DIR=$WORK/target/linux
            inner_aarch64
            ;;
        windows)
            inner_checks windows "$WIN"
            ;;
        macos)
            # shellcheck disable=SC2086 # the target list, split
            inner_checks macos $MACS
            ;;
        *) die "unknown inner part $part" ;;
    esac
}

# ---------------------------------------------------------------------------
# On the host.

# A private copy of forky-pythons.sh (and of this script, for the root): a
# script edited while bash runs it breaks the run.
FP=""
prepare() {
    [ "$(id -u)" -eq 0 ] || die "run as root (forky-pythons.sh needs it)"
    [ -x "$FORKY_PYTHONS" ] || die "no forky-pythons.sh at $FORKY_PYTHONS (set FORKY_PYTHONS)"
    mkdir -p "$WORK/logs"
    cp "$FORKY_PYTHONS" "$WORK/forky-pythons.sh"
    cp "$SELF" "$WORK/cross-targets.sh"
    FP=$WORK/forky-pythons.sh
    export FORKY_ROOT=$ROOT FORKY_RUST=debian FORKY_MINIMAL=1
}

setup() {
    local start
    start=$(now)
    FORKY_LOG=$WORK/logs/setup.log FORKY_EXTRA_PACKAGES=$HOST_PACKAGES nice -n 10 "$FP" setup >"$WORK/logs/setup.out" 2>&1 || {
        tail -n 30 "$WORK/logs/setup.out" >&2
        record setup "forky root $ROOT (forky-pythons.sh setup)" FAILED "$(elapsed "$start")" "see $WORK/logs/setup.log"
        return 1
    }
    record setup "forky root $ROOT (forky-pythons.sh setup, FORKY_RUST=debian)" ok "$(elapsed "$start")"

    # The arm64 half, installed with rustc, cargo, rust-src and both stds in
    # one apt-get so that their versions stay equal (forky moves).
    start=$(now)
    # shellcheck disable=SC2016
    if ! nice -n 10 "$FP" run -e DEBIAN_FRONTEND=noninteractive -e "PY=$PY" -- bash -c '
        set -euo pipefail
        dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
        want=(rustc cargo rust-src rust-clippy libstd-rust-dev:amd64 libstd-rust-dev:arm64 libc6-dev:arm64 "libpython$PY-dev:arm64")
        missing=0
        for package in "${want[@]}"; do
            dpkg-query -W -f="\${Status}" "$package" 2>/dev/null | grep -q "install ok installed" || missing=1
        done
        if [ "$missing" = 1 ]; then
            apt-get update
            apt-get install -y --no-install-recommends "${want[@]}"
            apt-get clean
        fi
        rustc=$(dpkg-query -W -f="\${Version}" rustc)
        for package in rust-src rust-clippy libstd-rust-dev:arm64; do
            version=$(dpkg-query -W -f="\${Version}" "$package")
            [ "$version" = "$rustc" ] || { echo "$package is $version, rustc is $rustc" >&2; exit 1; }
        done
        echo "rustc $rustc; $(qemu-aarch64 --version | head -n 1); $(aarch64-linux-gnu-gcc --version | head -n 1); libpython$PY-dev:arm64 $(dpkg-query -W -f="\${Version}" "libpython$PY-dev:arm64")"
    ' >"$WORK/logs/setup-arm64.log" 2>&1; then
        tail -n 30 "$WORK/logs/setup-arm64.log" >&2
        record setup "arm64 packages (multiarch)" FAILED "$(elapsed "$start")" "see $WORK/logs/setup-arm64.log"
        return 1
    fi
    record setup "arm64 packages (multiarch), versions equal" ok "$(elapsed "$start")" "$(tail -n 1 "$WORK/logs/setup-arm64.log")"
    say "  size of $ROOT: $(du -sxh "$ROOT" | cut -f1)"
}

# A fresh copy of CROSS_SRC's working tree (tracked and untracked files
# that git does not ignore); the target directory is kept between runs.
copy_source() {
    local start
    start=$(now)
    # Read only: no optional index refresh in CROSS_SRC.
    export GIT_OPTIONAL_LOCKS=0
    git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1 || die "$SRC is not a git checkout"
    rm -rf "$WORK/src"
    mkdir -p "$WORK/src"
    git -C "$SRC" ls-files -z -c -o --exclude-standard |
        tar -C "$SRC" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$WORK/src" -xf -
    record source "copy of $SRC ($(git -C "$SRC" rev-parse --short HEAD)$(git -C "$SRC" diff --quiet HEAD 2>/dev/null || echo ', with changes'))" ok "$(elapsed "$start")"
}

part() {
    local name=$1 rc=0
    nice -n 10 "$FP" run -b "$WORK" -e "CROSS_WORK=$WORK" -e "CROSS_PYTHON=$PY" -e "CROSS_PROGRAMS=$PROGRAMS" \
        -e "CROSS_RUST_TESTS=$RUST_TESTS" -e "CROSS_CHECK_PYTHONS=$CHECK_PYTHONS" -e "CROSS_JOBS=$JOBS" \
        -e "CROSS_TEST_OPS=$TEST_OPS" -e "CROSS_STRESS_OPS=$STRESS_OPS" -e "CROSS_MACS=$MACS" \
        -- bash "$WORK/cross-targets.sh" __inner "$name" || rc=$?
    return "$rc"
}

summary() {
    say "--- summary (details in $WORK/logs; pyalloc's diagnostics in $WORK/errors)"
    awk -F'\t' '{ printf "cross-targets: %-8s %-8s %5s s  %s%s\n", $1, $3, $4, $2, ($5 == "" ? "" : "  [" $5 "]") }' "$WORK/summary.tsv"
    say "disk: root $(du -sxh "$ROOT" | cut -f1), $WORK $(du -sxh "$WORK" | cut -f1)"
}

main() {
    local what=${1:-all} status=0 rc
    case "$what" in
        __inner)
            shift
            inner "$@"
            return
            ;;
        all | setup | aarch64 | windows | macos) ;;
        *) sed -n '/^# Usage/,/^# Environment:/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
    esac
    prepare
    : >"$WORK/summary.tsv"
    if [ "$what" = all ] || [ "$what" = setup ]; then
        setup || { summary; exit 1; }
    fi
    [ "$what" = setup ] && { summary; exit 0; }
    [ -e "$ROOT/etc/forky-pythons.bootstrapped" ] || die "no root at $ROOT: run '$SELF setup' first"
    copy_source
    local p
    if [ "$what" = all ]; then
        # Two lanes, one per core, of about equal length (measured): aarch64
        # (mostly qemu, one thread at a time) then x86-64 macOS; Windows then
        # arm64 macOS. Each lane's builds use CROSS_JOBS (default 1); every
        # target has its own target directory.
        local lane
        (
            rc=0
            part aarch64 || rc=1
            MACS=x86_64-apple-darwin part macos || rc=1
            exit "$rc"
        ) &
        lane=$!
        rc=0
        part windows || rc=$?
        [ "$rc" -eq 0 ] || status=1
        rc=0
        MACS=aarch64-apple-darwin part macos || rc=$?
        [ "$rc" -eq 0 ] || status=1
        rc=0
        wait "$lane" || rc=$?
        [ "$rc" -eq 0 ] || status=1
    else
        rc=0
        part "$what" || rc=$?
        [ "$rc" -eq 0 ] || status=1
    fi
    summary
    exit "$status"
}

main "$@"
