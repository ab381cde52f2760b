"""utf8scan: where a byte string stops being UTF-8, found by Rust, owned by C."""

from ._utf8scan import Offsets, invalid_offsets, pyalloc_stats, pyalloc_version

__all__ = ["Offsets", "invalid_offsets", "pyalloc_stats", "pyalloc_version"]
