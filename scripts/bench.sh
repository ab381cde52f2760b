#!/usr/bin/env bash
# pyalloc's benchmark: runs bench/ (an embedded interpreter, every contender
# interleaved in one process) on CPython 3.11, 3.12 and 3.13, and on 3.14 and
# 3.15 inside the Debian testing root (scripts/forky-pythons.sh; made when
# missing, as scripts/test.sh does), then writes bench/results.md and
# bench/results.png from the runs' JSON.
#
#   scripts/bench.sh           the full run (a few minutes per version),
#                              results in bench/
#   scripts/bench.sh --quick   seconds, CPython 3.11 only, results in
#                              target/bench-quick/, no verdicts (the test
#                              command runs it so that the benchmark keeps
#                              building and running)
#
# Timing never fails it: missed targets are printed as missed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

quick=()
out=bench
minors=(11 12 13)
if [ "${1:-}" = "--quick" ]; then
    quick=(--quick)
    out=target/bench-quick
    minors=(11)
fi
mkdir -p "$out"

results=()
for minor in "${minors[@]}"; do
    python=$(find_python_or_skip bench "$minor")
    [ -n "$python" ] || continue
    json="$out/results-3.${minor}.json"
    PYO3_PYTHON="$python" CARGO_TARGET_DIR="target/bench/py3${minor}" \
        cargo run --quiet --release --manifest-path bench/Cargo.toml -- "${quick[@]}" --json "$json"
    results+=("$json")
done
# CPython 3.14 and 3.15 (full run only): forky's binaries need glibc 2.38, so
# they build and run inside the root, each in a target directory of its own
# (a build there links against forky's glibc; no host build may share it).
if [ ${#quick[@]} -eq 0 ]; then
    forky=(scripts/forky-pythons.sh run -b "$PWD" --)
    if scripts/forky-pythons.sh ready || scripts/forky-pythons.sh setup; then
        for minor in 14 15; do
            json="$out/results-3.${minor}.json"
            PYO3_PYTHON="/usr/bin/python3.${minor}" CARGO_TARGET_DIR="target/bench/py3${minor}" \
                "${forky[@]}" cargo run --quiet --release --manifest-path bench/Cargo.toml -- --json "$json"
            results+=("$json")
        done
    else
        echo "bench: no Debian testing root (scripts/forky-pythons.sh setup failed): CPython 3.14 and 3.15 skipped" >&2
    fi
fi
if [ ${#results[@]} -eq 0 ]; then
    echo "bench: no CPython to run on" >&2
    exit 1
fi

if [ ${#quick[@]} -gt 0 ]; then
    python3 bench/report.py --out "$out" "${results[@]}"
else
    venv=target/venv/bench
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "matplotlib>=3.5"
    "$venv/bin/python" bench/report.py --png --out "$out" "${results[@]}"
fi
