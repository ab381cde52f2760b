"""utf8scan's tests: the Rust scan agrees with Python's decoder, its result
is Rust memory read without a copy and released by C, tracemalloc sees it,
and the whole file passes again under PYTHONMALLOC=debug."""

import ctypes
import os
import random
import subprocess
import sys
import tracemalloc

import pytest

import utf8scan

INNER_RUN = os.environ.get("UTF8SCAN_INNER_RUN") == "1"


def expected_offsets(data):
    """Where Python's own UTF-8 decoder finds invalid sequences."""
    starts = []

    def record(error):
        starts.append(error.start)
        return ("", error.end)

    import codecs

    codecs.register_error("utf8scan-test-record", record)
    data.decode("utf-8", errors="utf8scan-test-record")
    return starts


class PyBuffer(ctypes.Structure):
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


def buffer_address(obj):
    """The address a buffer view of `obj` reads from."""
    view = PyBuffer()
    if ctypes.pythonapi.PyObject_GetBuffer(ctypes.py_object(obj), ctypes.byref(view), 0) != 0:
        raise TypeError("no buffer")
    try:
        return view.buf
    finally:
        ctypes.pythonapi.PyBuffer_Release(ctypes.byref(view))


@pytest.mark.parametrize(
    "data, offsets",
    [
        (b"", []),
        (b"plain ascii", []),
        ("h\u00e9llo \u20ac \U0001f600".encode(), []),
        (b"a\xffb\xfe", [1, 3]),
        (b"\xe2\x82x\x80", [0, 3]),
        (b"ok\xe2\x82", [2]),
        (b"\xed\xa0\x80", [0, 1, 2]),  # an encoded surrogate is invalid
    ],
)
def test_known_cases(data, offsets):
    result = utf8scan.invalid_offsets(data)
    assert list(memoryview(result)) == offsets == expected_offsets(data)
    assert len(result) == len(offsets)


def test_agrees_with_pythons_decoder_on_random_bytes():
    rng = random.Random(20261125)
    pieces = [b"a", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xff", b"\x80", b"\xe2\x82", b"\xf0\x9f"]
    for _ in range(500):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 64)))
        assert list(memoryview(utf8scan.invalid_offsets(data))) == expected_offsets(data), data


def test_accepts_any_bytes_like_object():
    data = b"x\xffy"
    for form in (data, bytearray(data), memoryview(data)):
        assert list(memoryview(utf8scan.invalid_offsets(form))) == [1]


@pytest.mark.parametrize("bad", [None, 42, "text is not bytes", [1, 2]])
def test_rejects_what_is_not_bytes_like(bad):
    with pytest.raises(TypeError):
        utf8scan.invalid_offsets(bad)


def test_result_is_the_rust_block_without_a_copy():
    result = utf8scan.invalid_offsets(b"\xff" * 1000)
    view = memoryview(result)
    assert view.format == "Q" and view.itemsize == 8 and view.readonly
    assert view.nbytes == 8000
    # Every view reads the block Rust built, at the address Rust handed over.
    assert buffer_address(result) == result.address() == buffer_address(view)
    assert list(view[:3]) == [0, 1, 2]


def test_this_modules_own_pyalloc_counts_its_blocks():
    # Each extension links its own copy of pyalloc: utf8scan.pyalloc_stats()
    # (one line of its C, PYALLOC_STATS_METHODDEF) shows this one's counters.
    before = utf8scan.pyalloc_stats()
    results = [utf8scan.invalid_offsets(b"\xff" * 10) for _ in range(5)]
    after = utf8scan.pyalloc_stats()
    assert after["pymem_allocs"] >= before["pymem_allocs"] + 5
    assert after["rehomed"] == before["rehomed"], "no copy: PyAlloc is the crate's global allocator"
    del results


def test_tracemalloc_attributes_the_rust_result_to_this_line():
    data = b"\xff" * (2 << 20)  # 2 Mi invalid bytes: 16 MiB of offsets
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        result = utf8scan.invalid_offsets(data)  # built by Rust, under the GIL
        line = sys._getframe().f_lineno - 1
        after = tracemalloc.take_snapshot()
        size_with_result = tracemalloc.get_traced_memory()[0]
        del result  # C's PyMem_Free releases it
        size_after_free = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    attributed = sum(
        stat.size_diff
        for stat in after.compare_to(before, "lineno")
        if stat.traceback[0].filename == __file__ and stat.traceback[0].lineno == line
    )
    assert attributed >= 0.9 * (16 << 20), f"only {attributed} bytes attributed to line {line}"
    # The 16 MiB block, less what was allocated between the two readings
    # (the int holding the first one, at least: 32 bytes more than the
    # result object's own header on 3.14 under PYTHONMALLOC=debug).
    assert size_with_result - size_after_free >= (16 << 20) - 4096, "PyMem_Free released the block"


@pytest.mark.skipif(INNER_RUN, reason="this is the inner run")
def test_this_file_under_the_debug_hooks():
    env = dict(os.environ, PYTHONMALLOC="debug", UTF8SCAN_INNER_RUN="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
