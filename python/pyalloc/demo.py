"""The exchange between Rust and C, shown from Python: each function calls
into pyalloc's demonstration exports (``pyalloc_demo_*``) through the C
extension, ``python/pyalloc/_demo.c``, which is the code to copy.

- ``hex(data)``: Rust builds the hex text of ``data`` on the PyMem heap and
  hands it to C; the ``RustBuffer`` that owns it shows it without a copy and
  releases it with ``PyMem_Free``.
- ``consume(data)``: C copies ``data`` into a ``PyMem_Malloc`` block and hands
  it to Rust, which sums it and drops it.
- ``parallel(threads, ops, release_gil=True)``: Rust threads that allocate,
  share and free, with the GIL released or held; returns a checksum that
  depends only on the arguments.
"""

from ._pyalloc import RustBuffer, consume, hex, parallel

__all__ = ["RustBuffer", "consume", "hex", "parallel"]
