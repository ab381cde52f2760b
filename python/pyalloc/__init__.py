"""pyalloc: CPython's PyMem heap shared by Rust and C code in one extension.

The extension ``pyalloc._pyalloc`` is the reference consumer of the C API;
``get_include()`` and ``get_library()`` serve extension authors who link the
static library into their own modules.
"""

from pathlib import Path

from ._pyalloc import RustBuffer, collect, consume, hex, parallel, stats, version

__all__ = [
    "RustBuffer",
    "collect",
    "consume",
    "get_include",
    "get_library",
    "hex",
    "parallel",
    "stats",
    "version",
]

__version__ = version()

_PACKAGE = Path(__file__).resolve().parent


def get_include() -> str:
    """The directory that holds ``pyalloc.h``, for an Extension's include_dirs."""
    return str(_PACKAGE / "include")


def get_library() -> str:
    """The path of the installed static library ``libpyalloc.a``."""
    return str(_PACKAGE / "lib" / "libpyalloc.a")
