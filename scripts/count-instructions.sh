#!/usr/bin/env bash
# The instructions one alloc+free pair of pyalloc executes, counted, not
# timed: on a shared machine timings move 5-15% from run to run, counts do
# not. For each CPython (3.11 and 3.13 unless given) and each path (the GIL
# held: pymem; released: the private heap), `pyalloc-bench --pair-loop` runs
# under `valgrind --tool=cachegrind` for 200,000 and for 400,000 pairs; the
# difference over 200,000 is one pair, start-up and interpreter set-up
# cancelled out.
#
#   scripts/count-instructions.sh [--size BYTES] [MINOR...]   e.g. 11 13
#
# Builds bench/ in release mode where scripts/bench.sh does
# (target/bench/py3X). Needs valgrind. Prints a line per CPython and path.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

size=64
if [ "${1:-}" = "--size" ]; then
    size=$2
    shift 2
fi
minors=("$@")
[ ${#minors[@]} -gt 0 ] || minors=(11 13)
command -v valgrind >/dev/null || { echo "count-instructions: needs valgrind" >&2; exit 1; }

# Instructions the whole run of `--pair-loop PAIRS` executes.
count() {
    local binary=$1 pairs=$2 path=$3 out
    out=$(mktemp)
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
        "$binary" --pair-loop "$pairs" "$size" $path 2>"$out" >/dev/null
    sed -n 's/.*I *refs: *//p' "$out" | tr -d ,
    rm -f "$out"
}

for minor in "${minors[@]}"; do
    python=$(find_python_or_skip count-instructions "$minor")
    [ -n "$python" ] || continue
    target="target/bench/py3${minor}"
    PYO3_PYTHON="$python" CARGO_TARGET_DIR="$target" \
        cargo build --quiet --release --manifest-path bench/Cargo.toml
    binary="$target/release/pyalloc-bench"
    for path in --gil ""; do
        small=$(count "$binary" 200000 "$path")
        large=$(count "$binary" 400000 "$path")
        printf 'CPython 3.%s, %s B, %-9s %d instructions a pair\n' "$minor" "$size" \
            "$([ -n "$path" ] && echo "GIL held:" || echo "no GIL:")" $(((large - small) / 200000))
    done
done
