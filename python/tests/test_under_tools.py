"""The Python suite again in a subprocess under PYTHONMALLOC=debug, where
every family mismatch, GIL violation and overrun is fatal; and a workload
under valgrind, with every block a malloc block."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyalloc_checks import require_tool, source_names, valgrind_problems

from conftest import REPO

INNER_RUN = os.environ.get("PYALLOC_INNER_RUN") == "1"
TESTS = Path(__file__).resolve().parent


@pytest.mark.skipif(INNER_RUN, reason="this is the inner run")
def test_suite_under_debug_hooks():
    env = dict(os.environ, PYTHONMALLOC="debug", PYALLOC_INNER_RUN="1")
    files = [str(TESTS / name) for name in ("test_demo.py", "test_package.py")]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert " passed" in result.stdout


VALGRIND_WORKLOAD = """
import threading, pyalloc
from pyalloc import demo
for size in (0, 1, 100, 5000, 1 << 20):
    data = bytes(i % 251 for i in range(size))
    assert bytes(demo.hex(data)) == data.hex().encode()
    assert demo.consume(data) == sum(data)
assert demo.parallel(3, 40) == demo.parallel(3, 40, release_gil=False)
threads = [threading.Thread(target=demo.consume, args=(bytes(300),)) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
pyalloc.collect()
print("ok")
"""


@pytest.mark.skipif(INNER_RUN, reason="this is the inner run")
def test_valgrind_finds_no_invalid_access_and_no_leak_from_the_extension(tmp_path):
    valgrind = require_tool("valgrind")
    log = tmp_path / "valgrind.log"
    command = [
        valgrind,
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=none",
        f"--log-file={log}",
        f"--suppressions={REPO / 'c_tests' / 'valgrind-python.supp'}",
    ]
    # Every block a malloc block, so that valgrind sees each one.
    env = dict(os.environ, PYTHONMALLOC="malloc", PYALLOC_PRIVATE_HEAP="system")
    result = subprocess.run(
        command + [sys.executable, "-c", VALGRIND_WORKLOAD], capture_output=True, text=True, env=env, timeout=900
    )
    assert result.returncode == 0, result.stderr[-6000:] + log.read_text()[-6000:]
    assert result.stdout.strip() == "ok"
    sources = source_names([REPO / "src", REPO / "python" / "pyalloc"])
    assert valgrind_problems(log.read_text(), sources) == []
