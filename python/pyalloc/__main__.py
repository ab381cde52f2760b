"""python -m pyalloc: what this interpreter's allocator is, and whether Rust
and C share it through pyalloc here. Exits 0 only when every check passes.

    python -m pyalloc          a report to read in a terminal
    python -m pyalloc --json   the same as JSON
"""

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import weakref

import pyalloc
from pyalloc import _pyalloc, demo

TRACED_SIZE = 16 << 20
TIMING_SIZES = (16, 64, 256, 4096)


def allocator_name():
    """The running interpreter's PyMem allocator: pymalloc, debug hooks, malloc.

    CPython's test modules name it: `_testcapi.pymem_getallocatorsname()` on
    3.11 and 3.12, `_testinternalcapi.pymem_getallocatorsname()` from 3.13 on
    (it moved there). Both modules are optional parts of an installation."""
    for module_name in ("_testinternalcapi", "_testcapi"):
        try:
            module = __import__(module_name)
            return module.pymem_getallocatorsname()
        except (ImportError, AttributeError, RuntimeError):
            continue
    return os.environ.get("PYTHONMALLOC") or "default (unknown: no _testinternalcapi or _testcapi)"


def check_rust_to_c():
    buffer = demo.hex(b"pyalloc\x00\xff")
    text = bytes(memoryview(buffer))
    on_pymem = buffer.is_pymem
    alive = weakref.ref(buffer)
    del buffer
    gc.collect()
    ok = text == b"7079616c6c6f6300ff" and on_pymem and alive() is None
    return ok, f"hex() built {text.decode()!r} in Rust; C released it with PyMem_Free on deallocation"


def check_c_to_rust():
    data = bytes(range(256)) * 16
    total = demo.consume(data)
    return total == sum(data), f"C copied {len(data)} bytes into PyMem_Malloc; Rust summed ({total}) and dropped them"


def check_threads():
    released = demo.parallel(4, 200, release_gil=True)
    held = demo.parallel(4, 200, release_gil=False)
    return released == held, f"4 Rust threads, GIL released and held: checksum {released:#x} both ways"


def check_tracemalloc():
    data = bytes(TRACED_SIZE // 2)
    buffer, attributed = pyalloc.traced_to_caller(demo.hex, data)
    share = attributed / len(buffer)
    detail = (
        f"{attributed / 2**20:.1f} of {len(buffer) / 2**20:.1f} MiB that Rust allocated under the GIL "
        f"is attributed to the Python line that called it ({share:.0%})"
    )
    return share >= 0.9, detail


def check_worker_tracemalloc():
    """How much of Rust worker threads' memory (private blocks, made without
    the GIL) tracemalloc saw: all of it on CPython 3.15+ with
    PYALLOC_TRACEMALLOC=1, none otherwise (then the check only reports)."""
    import tracemalloc

    tracking = pyalloc.tracemalloc_tracking()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        private_before = pyalloc.stats()["private_allocs"]
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        demo.parallel(4, 500, release_gil=True)
        peak = tracemalloc.get_traced_memory()[1] - baseline
        made = pyalloc.stats()["private_allocs"] - private_before
    finally:
        if not was_tracing:
            tracemalloc.stop()
    seen = f"tracemalloc's peak rose by {peak / 1024:.0f} KiB while 4 Rust workers made {made} private blocks"
    if tracking:
        return peak > 64 * 1024, f"{seen} (domain {pyalloc.TRACEMALLOC_DOMAIN}: traced)"
    return True, f"{seen} (not traced: needs CPython 3.15+ and PYALLOC_TRACEMALLOC=1)"


def timing_table():
    """Medians of alloc+free pairs, pyalloc against the system allocator,
    with the GIL held (pyalloc's PyMem path) and released (its private heap)."""
    rows = []
    for release_gil in (False, True):
        for size in TIMING_SIZES:
            runs = {name: [] for name in ("pyalloc", "system")}
            for _ in range(5):
                for name in runs:  # interleaved, so both see the same machine
                    runs[name].append(_pyalloc._time_pairs(name, size, 2000, release_gil))
            pyalloc_ns = statistics.median(runs["pyalloc"])
            system_ns = statistics.median(runs["system"])
            rows.append(
                {
                    "gil": "released" if release_gil else "held",
                    "size": size,
                    "pyalloc_ns": pyalloc_ns,
                    "system_ns": system_ns,
                    "ratio": pyalloc_ns / system_ns,
                }
            )
    return rows


def build_report():
    checks = []
    for name, check in (
        ("Rust -> C (PyMem_Free)", check_rust_to_c),
        ("C (PyMem_Malloc) -> Rust", check_c_to_rust),
        ("Rust threads without the GIL", check_threads),
        ("tracemalloc sees Rust", check_tracemalloc),
        ("tracemalloc sees Rust workers", check_worker_tracemalloc),
    ):
        try:
            ok, detail = check()
        except Exception as error:  # a failed check is reported, not raised
            ok, detail = False, f"{type(error).__name__}: {error}"
        checks.append({"name": name, "ok": bool(ok), "detail": detail})
    pyalloc.collect()
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "allocator": allocator_name(),
        "pyalloc": pyalloc.version(),
        "checks": checks,
        "stats": pyalloc.stats(),
        "timing_ns_per_pair": timing_table(),
        "ok": all(check["ok"] for check in checks),
    }


def print_report(report):
    print(f"pyalloc {report['pyalloc']} on {report['implementation']} {report['python']} ({report['executable']})")
    print(f"PyMem allocator: {report['allocator']}")
    print()
    for check in report["checks"]:
        print(f"  [{'ok' if check['ok'] else 'FAIL'}] {check['name']}: {check['detail']}")
    print()
    print("statistics:")
    for name, value in report["stats"].items():
        print(f"  {name:<18} {value}")
    print()
    print("alloc+free pair, 64 live (median of 5; with the GIL pyalloc takes its PyMem path, without it its private heap):")
    print(f"  {'GIL':>8}  {'size':>6}  {'pyalloc':>9}  {'system':>9}  {'ratio':>6}")
    for row in report["timing_ns_per_pair"]:
        print(
            f"  {row['gil']:>8}  {row['size']:>6}  {row['pyalloc_ns']:>7.1f}ns  {row['system_ns']:>7.1f}ns"
            f"  {row['ratio']:>5.2f}x"
        )
    print()
    print("all checks passed" if report["ok"] else "SOME CHECKS FAILED")


def main(argv=None):
    summary = __doc__.split("\n\n")[0].split(": ", 1)[1].replace("\n", " ")
    description = summary[0].upper() + summary[1:]
    parser = argparse.ArgumentParser(prog="python -m pyalloc", description=description)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = build_report()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
