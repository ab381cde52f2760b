//! # pyalloc
//!
//! A Rust global allocator on CPython's `PyMem_*` heap, sound on every thread,
//! and a C API so that C and Rust code in one Python extension can hand
//! buffers to each other: Rust-built memory released by C with `PyMem_Free`,
//! C's `PyMem_Malloc` memory owned and dropped by Rust.
//!
//! - [`PyAlloc`] is the allocator. On a thread holding the main interpreter's
//!   GIL it uses `PyMem_Malloc`/`PyMem_Calloc`, so `tracemalloc` sees Rust's
//!   memory and `PYTHONMALLOC=debug` checks it; everywhere else it uses
//!   pyalloc's private heap without calling into Python at all.
//! - [`into_pymem`] turns a `Vec<u8>` into a [`PyMemBlock`] that C may
//!   `PyMem_Free`; [`vec_from_pymem`] takes a `PyMem_Malloc` block as a
//!   `Vec<u8>`.
//! - The C API (`pyalloc_malloc`, `pyalloc_free`, `pyalloc_is_pymem`, ...) is
//!   declared in `include/pyalloc.h`.
//!
//! Like every allocator crate, depending on pyalloc installs nothing: the
//! final artifact declares the allocator,
//!
//! ```text
//! #[global_allocator]
//! static GLOBAL: pyalloc::PyAlloc = pyalloc::PyAlloc;
//! ```
//!
//! or turns on the `global-allocator` feature (what pyalloc's own static
//! library does).
//!
//! ## The rules it relies on
//!
//! - **CPython 3.11: make a thread state for another thread only from a
//!   thread whose own state is alive.** A state made with
//!   `PyThreadState_New` on a thread with no state (or whose own another
//!   thread deleted) is bound to that maker, and 3.11 records nothing about
//!   who attaches it: if another thread does, the maker is taken for the
//!   GIL holder (its allocations then call PyMem without the GIL). 3.12+ is
//!   exact.
//! - **Subinterpreters, C API**: a block that is not private is taken to be
//!   a PyMem block of the calling thread's interpreter, as `PyMem_Free`
//!   would, so a main-interpreter PyMem block must not be released through
//!   `pyalloc_free`/`pyalloc_realloc` on a thread attached to a
//!   subinterpreter with its own obmalloc (3.12+). Rust's allocator takes
//!   every PyMem block to be the main interpreter's and queues it there.
//! - **Unloading**: a copy in a shared library keeps that library loaded
//!   (`RTLD_NODELETE`) once it registers its `Py_AtExit` hook.
//!
//! - **Worker threads' memory and tracemalloc (CPython 3.15+, opt-in)**:
//!   with `PYALLOC_TRACEMALLOC=1` in the environment when pyalloc first
//!   runs, private blocks are registered with `PyTraceMalloc_Track` in
//!   domain [`TRACEMALLOC_DOMAIN`] while tracemalloc traces, and
//!   untracked before they are freed ([`tracemalloc_tracking`] says
//!   whether this copy does). Never below 3.15, where the tracer takes the
//!   GIL and deadlocks a worker its GIL holder waits for. Not the default:
//!   a `Py_FinalizeEx` followed by a new `Py_Initialize` while workers
//!   allocate has a window of a few instructions (CPython resets
//!   tracemalloc's lock that a worker may hold) that pyalloc can narrow but
//!   not close, and every traced worker allocation takes a lock shared by
//!   all threads. Off, it costs allocation one relaxed load.
//!
//! The README's Guarantees and Limits say the rest, each with its test.
//!
//! The modules, top down: the faces (`alloc`, `capi`, `ownership`, `demo`);
//! the family choice (`family`, and `overaligned` on top of it); the two
//! heaps (`pymem` with the `deferred` queue, and `private`); the CPython
//! version shims (`cpython`); and the plumbing (`stats`, `sys`, `testing`, `thread_exit`).

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod alloc;
mod capi;
mod cpython;
mod deferred;
#[cfg(feature = "demo")]
mod demo;
mod family;
mod overaligned;
mod ownership;
mod private;
mod pymem;
mod stats;
mod sys;
mod testing;
mod thread_exit;

pub use crate::alloc::{is_global_allocator, PyAlloc};
pub use crate::capi::{
    pyalloc_calloc, pyalloc_collect, pyalloc_free, pyalloc_into_pymem, pyalloc_is_pymem, pyalloc_malloc,
    pyalloc_realloc, pyalloc_stats_get, pyalloc_tracemalloc_tracking, pyalloc_version,
};
#[cfg(feature = "demo")]
pub use crate::demo::{pyalloc_demo_consume, pyalloc_demo_hex, pyalloc_demo_parallel, DEMO_MAX_THREADS};
pub use crate::ownership::{into_pymem, vec_from_pymem, PyMemBlock};
pub use crate::private::TRACEMALLOC_DOMAIN;
pub use crate::stats::Stats;
#[cfg(feature = "testing")]
pub use crate::testing::{
    pyalloc_testing_counter_blocks, pyalloc_testing_layout, pyalloc_testing_main_gil,
    pyalloc_testing_set_pause,
};

/// A snapshot of this copy of pyalloc's counters, summed over all threads.
pub fn stats() -> Stats {
    stats::snapshot()
}

/// Whether this copy shows its private blocks (worker threads' memory) to
/// tracemalloc, in domain [`TRACEMALLOC_DOMAIN`]: opt-in with
/// `PYALLOC_TRACEMALLOC=1`, CPython 3.15 and later only (README, Limits:
/// why it is not the default).
pub fn tracemalloc_tracking() -> bool {
    private::tracemalloc_tracking()
}

/// Frees the PyMem blocks that were released on threads without the GIL and
/// returns how many; 0 when the calling thread does not hold the main
/// interpreter's GIL.
pub fn collect() -> usize {
    family::collect()
}

/// Whether the calling thread holds the main interpreter's GIL, as pyalloc
/// decides it for every allocation.
pub fn holds_main_gil() -> bool {
    matches!(family::caller(), family::Caller::Main(_))
}

/// Whether `block` is a PyMem block rather than one of pyalloc's private
/// blocks: what `pyalloc_is_pymem` answers in C.
///
/// # Safety
/// `block` is NULL or a live block from `PyAlloc`, pyalloc's C API or PyMem.
pub unsafe fn is_pymem<T: ?Sized>(block: *const T) -> bool {
    // SAFETY: as the caller promises.
    unsafe { family::is_pymem(block.cast::<u8>().cast_mut()) }
}

#[cfg(feature = "global-allocator")]
#[global_allocator]
static GLOBAL: PyAlloc = PyAlloc;
