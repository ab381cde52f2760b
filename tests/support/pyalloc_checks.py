"""pyalloc's shared test helpers in Python: the Python suite (python/tests)
imports them, and the C tests (tests/c_api.rs) run this file as a script to
read valgrind's logs, so each check exists once.

    python pyalloc_checks.py valgrind --sources DIR [--sources DIR ...] LOG...

exits 0 when every log is clean (no error, no block that pyalloc's own code
allocated and lost); otherwise 1, with the offending records printed.
"""

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path


def run_snippet(code, env=None, timeout=120):
    """Runs Python code in a fresh interpreter (this one, with `env` or this
    environment); returns its stdout, failing on a non-zero exit."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def require_tool(name):
    """The path of a command-line tool, or a failure that names it: a test
    that cannot run fails rather than passing or skipping."""
    path = shutil.which(name)
    assert path is not None, f"{name} is required by this test and was not found (scripts/test.sh installs it)"
    return path


def needed_libraries(shared_object):
    """The DT_NEEDED entries of a shared object, from readelf (binutils)."""
    dynamic = subprocess.run(
        [require_tool("readelf"), "-d", str(shared_object)], capture_output=True, text=True, check=True
    )
    return [line.split("[", 1)[1].rstrip("]") for line in dynamic.stdout.splitlines() if "(NEEDED)" in line]

# Frames that only pass an allocation through: the C and PyMem allocators and
# Rust's allocation plumbing (std's frames name their files under library/).
ALLOCATOR_FRAME = re.compile(
    r"(?:at|by) 0x[0-9A-Fa-f]+: (?:malloc|calloc|realloc|posix_memalign|_?PyMem_\w+|_?PyObject_\w*alloc\w*"
    r"|__rust_\w+|__rdl_\w+|<?alloc::|<?core::|<?std::)|\(library/"
)
FRAME_SOURCE = re.compile(r"\(([^():/]+):\d+\)\s*$")


def records(output):
    """Valgrind's messages, one string each: its lines are prefixed with
    ``==PID==`` and its records are separated by prefixed blank lines."""
    found, current = [], []
    for line in output.splitlines():
        if not line.startswith("=="):
            continue
        text = line.split("==", 2)[-1].strip()
        if text:
            current.append(text)
        elif current:
            found.append("\n".join(current))
            current = []
    if current:
        found.append("\n".join(current))
    return found


def source_names(directories):
    """The file names of pyalloc's own code (Rust and C) under `directories`."""
    return {
        path.name
        for directory in directories
        for path in Path(directory).rglob("*")
        if path.suffix in (".rs", ".c")
    }


def allocated_by(record, sources):
    """Whether a leak record's block was allocated by code in `sources`: the
    first frame past the allocators is in one of those files. Blocks CPython
    allocates on pyalloc's behalf are CPython's (3.12 keeps the interned names
    of a new type's attributes forever, which valgrind calls definitely lost)."""
    for frame in record.splitlines()[1:]:
        if ALLOCATOR_FRAME.search(frame):
            continue
        source = FRAME_SOURCE.search(frame)
        return source is not None and source.group(1) in sources
    return False


def valgrind_problems(output, sources):
    """Error summaries that are not clean, and leaks of pyalloc's blocks."""
    found = []
    if "ERROR SUMMARY:" not in output:
        found.append("no ERROR SUMMARY: valgrind did not finish")
    found += [line for line in output.splitlines() if "ERROR SUMMARY:" in line and "ERROR SUMMARY: 0 errors" not in line]
    found += [
        record
        for record in records(output)
        if "definitely lost in loss record" in record and allocated_by(record, sources)
    ]
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description="Check valgrind logs of pyalloc's tests.")
    commands = parser.add_subparsers(dest="command", required=True)
    valgrind = commands.add_parser("valgrind", help="no error, no block of pyalloc's code lost")
    valgrind.add_argument("--sources", action="append", required=True, help="a directory of pyalloc's own code")
    valgrind.add_argument("logs", nargs="+")
    args = parser.parse_args(argv)
    sources = source_names(args.sources)
    bad = [f"{log}:\n{problem}" for log in args.logs for problem in valgrind_problems(Path(log).read_text(), sources)]
    if bad:
        print("\n\n".join(bad))
        return 1
    print(f"valgrind: {len(args.logs)} log(s) clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
