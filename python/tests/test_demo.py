"""pyalloc.demo: buffers crossing between Rust and C through the extension,
Rust threads with and without the GIL, tracemalloc's view of Rust's
allocations, and a clear answer to bad input."""

import ctypes
import gc
import sys
import threading
import tracemalloc
import weakref

import pytest
from pyalloc_checks import run_snippet

import pyalloc
from pyalloc import demo


def address_of(view):
    """The address a memoryview reads from (zero-copy checks)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


# ---- round trips -------------------------------------------------------------


def test_hex_is_built_by_rust_and_read_without_copy():
    data = bytes(range(256))
    buffer = demo.hex(data)
    assert isinstance(buffer, demo.RustBuffer)
    assert bytes(buffer) == data.hex().encode()
    assert len(buffer) == 512
    assert buffer.is_pymem
    first, second = memoryview(buffer), memoryview(buffer)
    assert address_of(first) == address_of(second) == buffer.address
    assert first.nbytes == 512


def test_hex_accepts_any_bytes_like_and_empty_data():
    assert bytes(demo.hex(bytearray(b"\x01\xab"))) == b"01ab"
    assert bytes(demo.hex(memoryview(b"xyz")[1:])) == b"797a"
    empty = demo.hex(b"")
    assert len(empty) == 0 and bytes(empty) == b""
    assert empty.is_pymem


def test_rust_buffer_is_released_on_deallocation():
    tracemalloc.start()
    try:
        buffer = demo.hex(bytes(1 << 20))
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
    buffer = demo.hex(b"\xff" * 100)
    view = memoryview(buffer)
    del buffer
    gc.collect()
    assert bytes(view) == b"ff" * 100  # the view keeps its exporter alive
    view.release()


def test_consume_hands_pymem_memory_to_rust():
    data = bytes(range(256)) * 40
    assert demo.consume(data) == sum(data)
    assert demo.consume(bytearray(b"\x05\x06")) == 11
    assert demo.consume(b"") == 0


def test_tracemalloc_attributes_rust_allocation_to_the_calling_line():
    buffer, attributed = pyalloc.traced_to_caller(demo.hex, bytes(8 << 20))
    assert len(buffer) == 16 << 20
    assert attributed >= 0.9 * len(buffer), f"only {attributed} of {len(buffer)} bytes attributed"


# ---- threads -----------------------------------------------------------------


def test_parallel_with_and_without_the_gil_agree():
    released = demo.parallel(4, 300)
    held = demo.parallel(4, 300, release_gil=False)
    assert released == held != 0
    assert demo.parallel(1, 0) != 0


def test_parallel_with_tracemalloc_does_not_deadlock():
    # With tracemalloc on, PyMem_RawMalloc takes the GIL: a worker that called
    # it while this thread holds the GIL and waits would hang forever. Run in a
    # subprocess so that a hang is a timeout, not a stuck suite.
    code = (
        "import tracemalloc\n"
        "from pyalloc import demo\n"
        "tracemalloc.start()\n"
        "a = demo.parallel(4, 300, release_gil=False)\n"
        "b = demo.parallel(4, 300, release_gil=True)\n"
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
                assert demo.consume(data) == sum(data)
                assert bytes(demo.hex(data[:8])) == data[:8].hex().encode()
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
        demo.hex(bad)
    with pytest.raises(TypeError, match="bytes-like"):
        demo.consume(bad)


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
        demo.parallel(threads, ops)


def test_parallel_needs_its_arguments():
    with pytest.raises(TypeError):
        demo.parallel(2)
    with pytest.raises(TypeError):
        demo.parallel(2, 10, release_gil=True, extra=1)


@pytest.mark.parametrize("call", ["demo.hex(b'abc')", "demo.consume(b'abc')"])
def test_memory_error_when_pymem_fails(call):
    pytest.importorskip("_testcapi")
    # Every allocation fails between set_nomemory and remove_mem_hooks; run
    # in a subprocess so that nothing else in the suite sees it.
    code = (
        "import _testcapi\n"
        "from pyalloc import demo\n"
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
        demo.RustBuffer()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ refuses the import itself (test_package)")
def test_demo_in_a_legacy_subinterpreter_says_it_needs_the_main_one():
    # 3.11 has no Py_mod_multiple_interpreters: the module imports into a
    # subinterpreter, and the functions that hand C a block of the main
    # interpreter's heap say why they cannot, instead of MemoryError.
    code = (
        "import _xxsubinterpreters as interpreters\n"
        "interp = interpreters.create()\n"
        "interpreters.run_string(interp, '''\n"
        "import pyalloc\n"
        "from pyalloc import demo\n"
        "for call in (lambda: demo.hex(b'ab'), lambda: demo.consume(b'ab')):\n"
        "    try:\n"
        "        call()\n"
        "    except RuntimeError as error:\n"
        "        assert 'needs the main interpreter' in str(error), error\n"
        "    else:\n"
        "        raise AssertionError('no error')\n"
        "assert demo.parallel(2, 10) != 0\n"
        "pyalloc.collect(); pyalloc.stats()\n"
        "''')\n"
        "print('ok')\n"
    )
    assert run_snippet(code).strip() == "ok"


# ---- tracemalloc and worker threads (3.15+, PYALLOC_TRACEMALLOC=1) ------------

WORKERS_UNDER_TRACEMALLOC = """
import tracemalloc, pyalloc
from pyalloc import demo
tracemalloc.start()
tracemalloc.reset_peak()
base = tracemalloc.get_traced_memory()[0]
demo.parallel(4, 500, release_gil={release_gil})  # False: the GIL holder joins the workers
peak = tracemalloc.get_traced_memory()[1] - base
mine = tracemalloc.take_snapshot().filter_traces([tracemalloc.DomainFilter(True, pyalloc.TRACEMALLOC_DOMAIN)])
print(int(pyalloc.tracemalloc_tracking()), peak, sum(trace.size for trace in mine.traces))
"""


def workers_under_tracemalloc(option, release_gil):
    import os

    env = dict(os.environ, PYALLOC_TRACEMALLOC=option)
    out = run_snippet(WORKERS_UNDER_TRACEMALLOC.format(release_gil=release_gil), env=env, timeout=60)
    tracking, peak, left = (int(word) for word in out.split())
    return tracking, peak, left


@pytest.mark.parametrize("release_gil", [True, False])
def test_worker_memory_is_traced_on_315_with_the_option(release_gil):
    on = workers_under_tracemalloc("1", release_gil)
    off = workers_under_tracemalloc("0", release_gil)
    assert off[0] == 0
    if sys.version_info >= (3, 15):
        assert on[0] == 1
        # The workers' private blocks raise the peak (a few hundred KiB); and
        # every one was untracked when freed: nothing left in the domain.
        assert on[1] > off[1] + 64 * 1024, (on, off)
        assert on[2] == 0
    else:
        # Below 3.15 the tracer would take the GIL: never called.
        assert on[0] == 0
        assert on[2] == 0
