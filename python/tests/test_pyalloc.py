"""pyalloc's Python suite. Each test also runs a second time in a subprocess
under PYTHONMALLOC=debug (test_suite_under_debug_hooks), where every family
mismatch, GIL violation and overrun is fatal."""

import ctypes
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tracemalloc
import weakref
from pathlib import Path

import pytest

import pyalloc
from pyalloc import _pyalloc

INNER_RUN = os.environ.get("PYALLOC_INNER_RUN") == "1"
REPO = Path(__file__).resolve().parents[2]


def run_snippet(code):
    """Runs Python code in a fresh interpreter (this one's environment); returns
    its stdout, failing the test on a non-zero exit or after two minutes."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def address_of(view):
    """The address a memoryview reads from (zero-copy checks)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


# ---- round trips -------------------------------------------------------------


def test_hex_is_built_by_rust_and_read_without_copy():
    data = bytes(range(256))
    buffer = pyalloc.hex(data)
    assert isinstance(buffer, pyalloc.RustBuffer)
    assert bytes(buffer) == data.hex().encode()
    assert len(buffer) == 512
    assert buffer.is_pymem
    first, second = memoryview(buffer), memoryview(buffer)
    assert address_of(first) == address_of(second) == buffer.address
    assert first.nbytes == 512


def test_hex_accepts_any_bytes_like_and_empty_data():
    assert bytes(pyalloc.hex(bytearray(b"\x01\xab"))) == b"01ab"
    assert bytes(pyalloc.hex(memoryview(b"xyz")[1:])) == b"797a"
    empty = pyalloc.hex(b"")
    assert len(empty) == 0 and bytes(empty) == b""
    assert empty.is_pymem


def test_rust_buffer_is_released_on_deallocation():
    tracemalloc.start()
    try:
        buffer = pyalloc.hex(bytes(1 << 20))
        alive = weakref.ref(buffer)
        before = tracemalloc.get_traced_memory()[0]
        del buffer
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert alive() is None
    assert before - after >= 2 << 20, "PyMem_Free released the Rust-built 2 MiB"


def test_rust_buffer_outlives_its_views_correctly():
    buffer = pyalloc.hex(b"\xff" * 100)
    view = memoryview(buffer)
    del buffer
    gc.collect()
    assert bytes(view) == b"ff" * 100  # the view keeps its exporter alive
    view.release()


def test_consume_hands_pymem_memory_to_rust():
    data = bytes(range(256)) * 40
    assert pyalloc.consume(data) == sum(data)
    assert pyalloc.consume(bytearray(b"\x05\x06")) == 11
    assert pyalloc.consume(b"") == 0


def test_tracemalloc_attributes_rust_allocation_to_this_line():
    data = bytes(8 << 20)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        buffer = pyalloc.hex(data)  # 16 MiB allocated by Rust, under the GIL
        line = sys._getframe().f_lineno - 1
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    attributed = sum(
        stat.size_diff
        for stat in after.compare_to(before, "lineno")
        if stat.traceback[0].filename == __file__ and stat.traceback[0].lineno == line
    )
    assert len(buffer) == 16 << 20
    assert attributed >= 0.9 * len(buffer), f"only {attributed} bytes attributed to line {line}"


# ---- threads -----------------------------------------------------------------


def test_parallel_with_and_without_the_gil_agree():
    released = pyalloc.parallel(4, 300)
    held = pyalloc.parallel(4, 300, release_gil=False)
    assert released == held != 0
    assert pyalloc.parallel(1, 0) != 0


def test_parallel_with_tracemalloc_does_not_deadlock():
    # With tracemalloc on, PyMem_RawMalloc takes the GIL: a worker that called
    # it while this thread holds the GIL and waits would hang forever. Run in a
    # subprocess so that a hang is a timeout, not a stuck suite.
    code = (
        "import tracemalloc, pyalloc\n"
        "tracemalloc.start()\n"
        "a = pyalloc.parallel(4, 300, release_gil=False)\n"
        "b = pyalloc.parallel(4, 300, release_gil=True)\n"
        "assert a == b != 0, (a, b)\n"
        "print('ok')\n"
    )
    assert run_snippet(code).strip() == "ok"


def test_consume_from_python_threads():
    errors = []

    def work(seed):
        try:
            for round_ in range(200):
                data = bytes((seed + round_ + i) % 256 for i in range(64 + round_))
                assert pyalloc.consume(data) == sum(data)
                assert bytes(pyalloc.hex(data[:8])) == data[:8].hex().encode()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    pyalloc.collect()
    assert pyalloc.stats()["deferred_pending"] == 0


# ---- bad input ---------------------------------------------------------------


@pytest.mark.parametrize("bad", [1, "text", None, 3.5, [1, 2]])
def test_hex_and_consume_refuse_non_bytes(bad):
    with pytest.raises(TypeError, match="bytes-like"):
        pyalloc.hex(bad)
    with pytest.raises(TypeError, match="bytes-like"):
        pyalloc.consume(bad)


@pytest.mark.parametrize(
    "threads, ops, error, message",
    [
        ("2", 10, TypeError, "threads must be an int"),
        (2.0, 10, TypeError, "threads must be an int"),
        (True, 10, TypeError, "threads must be an int"),
        (2, None, TypeError, "ops must be an int"),
        (0, 10, ValueError, "threads must be between 1 and 64"),
        (-1, 10, ValueError, "threads must be between 1 and 64"),
        (65, 10, ValueError, "threads must be between 1 and 64"),
        (2, -5, ValueError, "ops must be between 0 and"),
        (2, 10**30, ValueError, "ops must be between 0 and"),
        (10**30, 1, ValueError, "threads must be between 1 and 64"),
    ],
)
def test_parallel_refuses_bad_counts(threads, ops, error, message):
    with pytest.raises(error, match=message):
        pyalloc.parallel(threads, ops)


def test_parallel_needs_its_arguments():
    with pytest.raises(TypeError):
        pyalloc.parallel(2)
    with pytest.raises(TypeError):
        pyalloc.parallel(2, 10, release_gil=True, extra=1)


@pytest.mark.parametrize("call", ["pyalloc.hex(b'abc')", "pyalloc.consume(b'abc')"])
def test_memory_error_when_pymem_fails(call):
    pytest.importorskip("_testcapi")
    # Every allocation fails between set_nomemory and remove_mem_hooks; run
    # in a subprocess so that nothing else in the suite sees it.
    code = (
        "import _testcapi, pyalloc\n"
        "_testcapi.set_nomemory(0)\n"
        "try:\n"
        f"    {call}\n"
        "except MemoryError:\n"
        "    outcome = 'MemoryError'\n"
        "else:\n"
        "    outcome = 'no error'\n"
        "finally:\n"
        "    _testcapi.remove_mem_hooks()\n"
        "print(outcome)\n"
    )
    assert run_snippet(code).strip() == "MemoryError"


def test_rust_buffer_cannot_be_made_from_python():
    with pytest.raises(TypeError):
        pyalloc.RustBuffer()


# ---- the package ---------------------------------------------------------------


def test_stats_collect_and_version():
    stats = pyalloc.stats()
    assert set(stats) >= {"pymem_allocs", "private_allocs", "deferred_pending", "deferred_freed", "rehomed"}
    assert all(isinstance(value, int) and value >= 0 for value in stats.values())
    assert isinstance(pyalloc.collect(), int)
    assert pyalloc.version() == pyalloc.__version__
    cargo_toml = REPO / "Cargo.toml"
    if cargo_toml.exists():
        assert f'version = "{pyalloc.version()}"' in cargo_toml.read_text()


def test_get_include_and_get_library():
    header = Path(pyalloc.get_include()) / "pyalloc.h"
    assert "pyalloc_malloc" in header.read_text()
    library = Path(pyalloc.get_library())
    assert library.read_bytes()[:8] == b"!<arch>\n"


def test_rust_symbols_are_hidden_from_the_module():
    module = ctypes.CDLL(_pyalloc.__file__)
    assert hasattr(module, "PyInit__pyalloc")
    for hidden in ("pyalloc_malloc", "pyalloc_demo_hex", "rust_begin_unwind"):
        assert not hasattr(module, hidden), hidden


@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf (binutils) is not installed")
def test_extension_does_not_link_libpython():
    # A module takes Python from the interpreter that loads it.
    dynamic = subprocess.run(["readelf", "-d", _pyalloc.__file__], capture_output=True, text=True, check=True)
    needed = [line for line in dynamic.stdout.splitlines() if "(NEEDED)" in line]
    assert needed and not [line for line in needed if "libpython" in line], needed


def test_typed_package():
    package = Path(pyalloc.__file__).parent
    assert (package / "py.typed").exists()
    assert (package / "_pyalloc.pyi").exists()


def test_report_passes_and_speaks_json():
    result = subprocess.run(
        [sys.executable, "-m", "pyalloc", "--json"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [check["ok"] for check in report["checks"]] == [True] * 4
    text = subprocess.run([sys.executable, "-m", "pyalloc"], capture_output=True, text=True, timeout=300)
    assert text.returncode == 0 and "all checks passed" in text.stdout


@pytest.mark.skipif(sys.version_info < (3, 12), reason="Py_mod_multiple_interpreters is 3.12+")
def test_module_declines_subinterpreters_with_their_own_gil():
    # hex() needs the main interpreter's PyMem heap, so the module says it
    # does not support other interpreters, and CPython refuses the import.
    code = (
        "try:\n"
        "    import _interpreters as interpreters\n"
        "except ImportError:\n"
        "    import _xxsubinterpreters as interpreters\n"
        "interp = interpreters.create()\n"
        "try:\n"
        "    result = interpreters.run_string(interp, 'import pyalloc._pyalloc')\n"
        "except Exception as error:\n"
        "    result = error\n"
        "print(repr(result))\n"
        "print(interpreters.run_string(interp, 'import math'))\n"
    )
    refused, control = run_snippet(code).strip().splitlines()
    assert "ImportError" in refused and "subinterpreters" in refused, refused
    assert control == "None", "a module without the declaration imports fine"


@pytest.mark.skipif(not (REPO / "setup.py").exists(), reason="needs the source tree")
@pytest.mark.parametrize(
    "env_changes, message",
    [
        ({"CARGO": None, "PATH": "/usr/bin:/bin"}, "cargo was not found: install Rust"),
        ({"CARGO": "/nonexistent/cargo"}, "could not run cargo"),
        ({"CARGO": "false"}, "cargo failed to build the static library of pyalloc"),
    ],
)
def test_setup_py_explains_a_missing_or_failing_cargo(tmp_path, env_changes, message):
    env = dict(os.environ)
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-temp", str(tmp_path), "--build-lib", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode != 0
    assert message in result.stderr + result.stdout


# ---- the whole suite again under the debug hooks, and under valgrind -----------


@pytest.mark.skipif(INNER_RUN, reason="this is the inner run")
def test_suite_under_debug_hooks():
    env = dict(os.environ, PYTHONMALLOC="debug", PYALLOC_INNER_RUN="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert " passed" in result.stdout


VALGRIND_WORKLOAD = """
import threading, pyalloc
for size in (0, 1, 100, 5000, 1 << 20):
    data = bytes(i % 251 for i in range(size))
    assert bytes(pyalloc.hex(data)) == data.hex().encode()
    assert pyalloc.consume(data) == sum(data)
assert pyalloc.parallel(3, 40) == pyalloc.parallel(3, 40, release_gil=False)
threads = [threading.Thread(target=pyalloc.consume, args=(bytes(300),)) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
pyalloc.collect()
print("ok")
"""


@pytest.mark.skipif(INNER_RUN, reason="this is the inner run")
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_valgrind_finds_no_invalid_access_and_no_leak_from_the_extension():
    suppressions = REPO / "c_tests" / "valgrind-python.supp"
    command = ["valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=none"]
    if suppressions.exists():
        command.append(f"--suppressions={suppressions}")
    env = dict(os.environ, PYTHONMALLOC="malloc")
    result = subprocess.run(
        command + [sys.executable, "-c", VALGRIND_WORKLOAD],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    assert result.stdout.strip() == "ok"
    leaks = [
        record
        for record in valgrind_records(result.stderr)
        if "definitely lost in loss record" in record and allocated_by_pyalloc(record)
    ]
    assert leaks == [], "\n\n".join(leaks)


# Frames that only pass an allocation through: the C and PyMem allocators and
# Rust's allocation plumbing (std's frames name their files under library/).
ALLOCATOR_FRAME = re.compile(
    r"(?:at|by) 0x[0-9A-Fa-f]+: (?:malloc|calloc|realloc|posix_memalign|_?PyMem_\w+|_?PyObject_\w*alloc\w*"
    r"|__rust_\w+|__rdl_\w+|<?alloc::|<?core::|<?std::)|\(library/"
)
FRAME_SOURCE = re.compile(r"\(([^():/]+):\d+\)\s*$")
PYALLOC_SOURCES = {"_pyalloc.c"} | {path.name for path in (REPO / "src").glob("*.rs")}


def allocated_by_pyalloc(record):
    """Whether a leak record's block was allocated by pyalloc's own code (its
    Rust sources or the C extension): the first frame past the allocators is
    in one of its files. Blocks CPython allocates on pyalloc's behalf are
    CPython's (3.12 keeps the interned names of a new type's attributes
    forever, which valgrind calls definitely lost)."""
    for frame in record.splitlines()[1:]:
        if ALLOCATOR_FRAME.search(frame):
            continue
        source = FRAME_SOURCE.search(frame)
        return source is not None and source.group(1) in PYALLOC_SOURCES
    return False


def valgrind_records(output):
    """Valgrind's messages, one string each: its lines are prefixed with
    ``==PID==`` and its records are separated by prefixed blank lines."""
    records, current = [], []
    for line in output.splitlines():
        if not line.startswith("=="):
            continue
        text = line.split("==", 2)[-1].strip()
        if text:
            current.append(text)
        elif current:
            records.append("\n".join(current))
            current = []
    if current:
        records.append("\n".join(current))
    return records
