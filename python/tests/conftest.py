"""Every test ends with pyalloc's deferred queue empty once a GIL holder has
collected: no PyMem block released without the GIL is left behind. The
shared helpers live in tests/support/pyalloc_checks.py (also used by the
Rust tests); this puts them on the path."""

import sys
from pathlib import Path

import pytest

import pyalloc

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))


@pytest.fixture(autouse=True)
def deferred_queue_is_empty_after_each_test():
    yield
    pyalloc.collect()
    stats = pyalloc.stats()
    assert stats["deferred_pending"] == 0, stats
    assert stats["invalid_pointers"] == 0, stats
    # The extension starts every interpreter lifetime (its exec slot).
    assert stats["deferred_unstarted"] == 0, stats
