//! A PyO3 extension whose Rust allocations tracemalloc can see: the only
//! pyalloc-specific line is the `#[global_allocator]` below.

use pyo3::prelude::*;

/// Rust's heap on CPython's PyMem allocator: allocations made while the GIL
/// is held (everything a `#[pyfunction]` does, unless it releases the GIL)
/// are traced by tracemalloc and attributed to the Python line that called.
#[cfg(feature = "pyalloc")]
#[global_allocator]
static GLOBAL: pyalloc::PyAlloc = pyalloc::PyAlloc;

/// `size` bytes built by Rust and kept alive by this object.
#[pyclass]
struct Blob {
    data: Vec<u8>,
}

#[pymethods]
impl Blob {
    #[new]
    fn new(size: usize) -> Self {
        Blob {
            data: vec![0x5a; size],
        }
    }

    fn __len__(&self) -> usize {
        self.data.len()
    }
}

/// Whether this build sends Rust's heap to PyMem.
#[pyfunction]
fn uses_pyalloc() -> bool {
    cfg!(feature = "pyalloc")
}

#[pymodule]
fn pyo3_tracemalloc(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Blob>()?;
    module.add_function(wrap_pyfunction!(uses_pyalloc, module)?)?;
    Ok(())
}
