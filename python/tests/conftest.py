"""Every test ends with pyalloc's deferred queue empty once a GIL holder has
collected: no pymem block released without the GIL is left behind."""

import pytest

import pyalloc


@pytest.fixture(autouse=True)
def deferred_queue_is_empty_after_each_test():
    yield
    pyalloc.collect()
    stats = pyalloc.stats()
    assert stats["deferred_pending"] == 0, stats
    assert stats["invalid_pointers"] == 0, stats
