//! # pyalloc
//!
//! A Rust global allocator on CPython's `PyMem_*` heap, sound on every thread,
//! and a C API so that C and Rust code in one Python extension can hand
//! buffers to each other: Rust-built memory released by C with `PyMem_Free`,
//! C's `PyMem_Malloc` memory owned and dropped by Rust.
//!
//! - [`PyAlloc`] is the allocator. With the main interpreter's GIL held it
//!   uses `PyMem_Malloc`/`PyMem_Calloc`, so `tracemalloc` sees Rust's memory
//!   and `PYTHONMALLOC=debug` checks it; everywhere else it uses the system
//!   allocator without calling into Python at all.
//! - [`into_pymem`] turns a `Vec<u8>` into a [`PyMemBlock`] that C may
//!   `PyMem_Free`; [`vec_from_pymem`] takes a `PyMem_Malloc` block as a
//!   `Vec<u8>`.
//! - The C API (`pyalloc_malloc`, `pyalloc_free`, `pyalloc_is_pymem`, ...) is
//!   declared in `include/pyalloc.h`.
//!
//! With the default `global-allocator` feature this crate installs `PyAlloc`
//! itself (what the static library wants). A crate that depends on pyalloc
//! turns the feature off and declares it:
//!
//! ```text
//! #[global_allocator]
//! static GLOBAL: pyalloc::PyAlloc = pyalloc::PyAlloc;
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod alloc;
mod capi;
mod deferred;
mod demo;
mod family;
mod overaligned;
mod ownership;
mod python;
mod stats;
mod sys;

pub use crate::alloc::PyAlloc;
pub use crate::capi::{
    pyalloc_calloc, pyalloc_collect, pyalloc_free, pyalloc_into_pymem, pyalloc_is_pymem, pyalloc_malloc,
    pyalloc_realloc, pyalloc_stats_get, pyalloc_version,
};
pub use crate::deferred::PENDING_CALL_BOUND;
pub use crate::demo::{pyalloc_demo_consume, pyalloc_demo_hex, pyalloc_demo_parallel, DEMO_MAX_THREADS};
pub use crate::ownership::{into_pymem, is_global_allocator, vec_from_pymem, PyMemBlock};
pub use crate::stats::Stats;

/// A snapshot of pyalloc's counters, summed over all threads.
pub fn stats() -> Stats {
    stats::snapshot()
}

/// Frees the pymem blocks that were released on threads without the GIL and
/// returns how many; 0 when the calling thread does not hold the main GIL.
pub fn collect() -> usize {
    capi::pyalloc_collect()
}

/// Whether the calling thread holds the main interpreter's GIL, as pyalloc
/// decides it for every allocation.
pub fn holds_main_gil() -> bool {
    python::holds_main_gil()
}

#[cfg(feature = "global-allocator")]
#[global_allocator]
static GLOBAL: PyAlloc = PyAlloc;
