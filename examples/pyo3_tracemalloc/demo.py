"""What tracemalloc shows for a 16 MiB buffer that Rust builds: run it with
the module built with pyalloc (the default) and without
(`MATURIN_PEP517_ARGS=--no-default-features pip install .`)."""

import tracemalloc

import pyo3_tracemalloc

tracemalloc.start()
before = tracemalloc.take_snapshot()
blob = pyo3_tracemalloc.Blob(16 << 20)
after = tracemalloc.take_snapshot()
tracemalloc.stop()

print(f"pyo3_tracemalloc built {'with' if pyo3_tracemalloc.uses_pyalloc() else 'without'} pyalloc")
print("top differences, tracemalloc.take_snapshot().compare_to(before, 'lineno'):")
for stat in after.compare_to(before, "lineno")[:3]:
    print(f"  {stat}")
