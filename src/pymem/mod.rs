//! The PyMem heap: `PyMem_Malloc` and friends, behind the proof that the
//! calling thread may use them (the CPython shims' tokens: [`Attached`] for
//! an interpreter's heap, [`MainGil`] for the main one), and the queue of
//! main-interpreter blocks released where PyMem may not be called
//! (`queue.rs`).

pub(crate) mod queue;

use core::ptr;

use pyo3_ffi::{PyMem_Calloc, PyMem_Free, PyMem_Malloc, PyMem_Realloc};

use crate::cpython::{Attached, MainGil};
use crate::stats::{self, Hot};
use crate::sys;

/// Every PyMem block is at least 8-aligned in any working CPython (its own
/// arrays of pointers live in them); pyalloc stops with a message rather
/// than hand Rust a block that breaks that. Private blocks are 16-aligned,
/// so this is also the largest alignment either family gives without a
/// header (`family/overaligned.rs` builds larger ones).
pub(crate) const ALIGN: usize = 8;

/// `PyMem_Malloc(size)`, or `PyMem_Calloc(1, size)` when `zeroed`: a block
/// C may `PyMem_Free`, seen by tracemalloc. NULL on failure.
#[inline]
pub(crate) fn allocate(_: &MainGil, size: usize, zeroed: bool) -> *mut u8 {
    // SAFETY: the token proves the main interpreter's GIL is held.
    let block: *mut u8 = unsafe {
        if zeroed {
            PyMem_Calloc(1, size).cast()
        } else {
            PyMem_Malloc(size).cast()
        }
    };
    if block.is_null() {
        return ptr::null_mut();
    }
    stats::bump(Hot::PymemAllocs);
    sys::checked_alignment(block, ALIGN, "PyMem_Malloc")
}

/// `PyMem_Realloc` on the heap of the interpreter `_gil` proves; on failure
/// NULL, and `block` stays valid.
///
/// # Safety
/// `block` is a live block of that interpreter's PyMem heap.
#[inline]
pub(crate) unsafe fn resize(_gil: &Attached, block: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: the token proves the GIL; the caller vouches for the block.
    let moved: *mut u8 = unsafe { PyMem_Realloc(block.cast(), size).cast() };
    if moved.is_null() {
        return ptr::null_mut();
    }
    sys::checked_alignment(moved, ALIGN, "PyMem_Realloc")
}

/// `PyMem_Free` on the heap of the interpreter `_gil` proves.
///
/// # Safety
/// `block` is a live block of that interpreter's PyMem heap, not used
/// afterwards.
#[inline]
pub(crate) unsafe fn release(_gil: &Attached, block: *mut u8) {
    // SAFETY: the token proves the GIL; the caller vouches for the block.
    unsafe { PyMem_Free(block.cast()) };
    stats::bump(Hot::PymemFrees);
}
