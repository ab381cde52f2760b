#!/usr/bin/env python3
"""Case 1 of the benchmark (alloc+free pairs) for several revisions of
pyalloc side by side: "did this change make it slower?".

    scripts/bench-side-by-side.py [--rounds N] [--python 3.11,3.13] REV...

Each REV (a commit, a branch, HEAD) is checked out in a worktree under
target/side-by-side/ and its own bench/ built in release mode for each
CPython; then the binaries run `--case 1` in turn, ROUNDS times (the
revisions interleaved, so that the machine's noise falls on all of them
alike). Printed, per CPython, table and column (pyalloc with the GIL held,
against pymem-direct; without it, against system): each size's median time
and median ratio to the reference measured in the same run, and each
revision's ratio-of-ratios to the first REV (1.00 = the same speed). The
first REV is the baseline. Nothing is judged: a shared machine is noisy,
read the medians.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "side-by-side"
COLUMNS = {"pyalloc": "pymem-direct", "pyalloc (no GIL)": "system"}
NAMES = re.compile(r"pyalloc \(no GIL, GIL busy\)|pyalloc \(no GIL\)|pyalloc|pymem-direct|c-model|naive|system|mimalloc")


def find_python(minor):
    """The CPython 3.`minor` to build with: pyenv's, else python3.X on PATH."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for candidate in sorted(pyenv.glob(f"3.{minor}.*/bin/python3.{minor}"), reverse=True):
        return str(candidate)
    found = shutil.which(f"python3.{minor}")
    if not found:
        sys.exit(f"side-by-side: no CPython 3.{minor}")
    return found


def build(rev, python, tag):
    """The bench binary of `rev` for `python`."""
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", rev], check=True,
                            capture_output=True, text=True).stdout.strip()
    src = WORK / f"src-{commit}"
    if not src.exists():
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-q", src, commit], check=True)
    target = WORK / f"target-{commit}-{tag}"
    env = dict(os.environ, PYO3_PYTHON=python, CARGO_TARGET_DIR=str(target))
    subprocess.run(["cargo", "build", "--quiet", "--release", "--manifest-path", "bench/Cargo.toml"],
                   cwd=src, env=env, check=True)
    return commit, target / "release" / "pyalloc-bench"


def parse(text):
    """{(table, column, size): (ns, ratio to the column's reference)}."""
    found, table, columns = {}, None, None
    for line in text.splitlines():
        if line.startswith("1. alloc+free pairs"):
            table, columns = ("batches" if "many live" in line else "one at a time"), None
        elif table and columns is None and line.strip().startswith("pyalloc"):
            columns = NAMES.findall(line)
        elif table and columns and re.match(r"^\s+\d", line):
            size = re.match(r"^\s+(\d+ [KM]?i?B)", line).group(1)
            values = dict(zip(columns, (float(v) for v in re.findall(r"([\d.]+) \([\d.]+x\)", line))))
            for column, reference in COLUMNS.items():
                found[(table, column, size)] = (values[column], values[column] / values[reference])
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--python", default="3.11,3.13", help="CPython minors, comma-separated")
    parser.add_argument("revs", nargs="+")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    pythons = {f"py3{m.split('.')[1]}": find_python(m.split(".")[1]) for m in args.python.split(",")}
    binaries = {}
    for tag, python in pythons.items():
        home = subprocess.run([python, "-c", "import sys; print(sys.base_prefix)"], check=True,
                              capture_output=True, text=True).stdout.strip()
        for rev in args.revs:
            commit, binary = build(rev, python, tag)
            binaries[(tag, rev)] = (commit, binary, home)
    results = {}
    for _ in range(args.rounds):
        for tag in pythons:
            for rev in args.revs:
                _, binary, home = binaries[(tag, rev)]
                env = dict(os.environ, PYTHONHOME=home, LD_LIBRARY_PATH=f"{home}/lib")
                text = subprocess.run([binary, "--case", "1"], env=env, check=True,
                                      capture_output=True, text=True).stdout
                for key, value in parse(text).items():
                    results.setdefault((tag,) + key, {}).setdefault(rev, []).append(value)
    base = args.revs[0]
    labels = [f"{rev} ({binaries[(next(iter(pythons)), rev)][0]})" for rev in args.revs]
    print(f"# Case 1 side by side: median of {args.rounds} interleaved rounds\n")
    print("Each cell: ns per pair (ratio to the reference in the same run); last columns:")
    print(f"that ratio against {labels[0]}'s.\n")
    for tag in pythons:
        for table in ("batches", "one at a time"):
            for column, reference in COLUMNS.items():
                keys = [k for k in results if k[:3] == (tag, table, column)]
                if not keys:
                    continue
                print(f"## {tag}, {table}, {column} (reference: {reference})\n")
                heads = labels + [f"{r} / {base}" for r in args.revs[1:]]
                print("| size | " + " | ".join(heads) + " |")
                print("|---" * (1 + len(heads)) + "|")
                against = {rev: [] for rev in args.revs[1:]}
                for key in keys:
                    runs = results[key]
                    ns = {rev: statistics.median(v[0] for v in runs[rev]) for rev in args.revs}
                    ratio = {rev: statistics.median(v[1] for v in runs[rev]) for rev in args.revs}
                    for rev in args.revs[1:]:
                        against[rev].append(ratio[rev] / ratio[base])
                    print(f"| {key[3]} | " + " | ".join(f"{ns[r]:.1f} ({ratio[r]:.2f})" for r in args.revs)
                          + " | " + " | ".join(f"{ratio[r] / ratio[base]:.2f}" for r in args.revs[1:]) + " |")
                for rev in args.revs[1:]:
                    print(f"\n{rev} / {base}: median {statistics.median(against[rev]):.2f}, "
                          f"largest {max(against[rev]):.2f}")
                print()


if __name__ == "__main__":
    main()
