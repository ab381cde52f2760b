"""pyalloc: CPython's PyMem heap shared by Rust and C code in one extension.

This package carries pyalloc's C API for extension authors: ``get_include()``
and ``get_library()`` (``pyalloc.h`` and ``libpyalloc.a``), and
``pyalloc.setuptools``, which builds a cargo crate into a C extension.
``stats()`` and ``collect()`` act on the copy of pyalloc linked into this
package's own extension: every extension module that links pyalloc has its
own copy, whose counters it can expose with ``pyalloc_python.h``.
``pyalloc.demo`` shows the exchange between Rust and C; ``python -m pyalloc``
reports whether it works on this interpreter.
"""

from pathlib import Path

from ._pyalloc import TRACEMALLOC_DOMAIN, collect, stats, tracemalloc_tracking, version

__all__ = [
    "TRACEMALLOC_DOMAIN",
    "collect",
    "get_include",
    "get_library",
    "stats",
    "traced_to_caller",
    "tracemalloc_tracking",
    "version",
]

__version__ = version()

_PACKAGE = Path(__file__).resolve().parent


def get_include() -> str:
    """The directory that holds ``pyalloc.h`` (and ``pyalloc_python.h``), for
    an Extension's include_dirs."""
    return str(_PACKAGE / "include")


def get_library() -> str:
    """The path of the installed static library: ``libpyalloc.a``, or
    ``pyalloc.lib`` where cargo names it so (Windows MSVC)."""
    msvc = _PACKAGE / "lib" / "pyalloc.lib"
    return str(msvc if msvc.is_file() else _PACKAGE / "lib" / "libpyalloc.a")


def traced_to_caller(function, *args):
    """Calls ``function(*args)`` with tracemalloc tracing and returns its
    result and how many bytes tracemalloc attributes to the line of Python
    that made the call: what a Rust allocation under the GIL should show."""
    import sys
    import tracemalloc

    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        result = function(*args)
        line = sys._getframe().f_lineno - 1
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    attributed = sum(
        stat.size_diff
        for stat in after.compare_to(before, "lineno")
        if stat.traceback[0].filename == __file__ and stat.traceback[0].lineno == line
    )
    return result, attributed
