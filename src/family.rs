//! The two block families, and how a block's family is read back from its
//! address alone.
//!
//! - *pymem*: `PyMem_Malloc` and friends, used when the calling thread holds
//!   the main interpreter's GIL. Headerless, so C may `PyMem_Free` it and
//!   tracemalloc attributes it to the Python line that called in. CPython
//!   aligns every such block to 16 bytes (pymalloc's ALIGNMENT, kept by the
//!   debug hooks and by glibc when `PYTHONMALLOC=malloc`); `pymem_alloc`
//!   checks it.
//! - *private*: the system allocator, used everywhere else, with no call into
//!   Python. A private block of alignment <= 8 is handed out 8 bytes into a
//!   16-aligned `malloc` block, so its address is 8 mod 16.
//!
//! So for blocks of alignment <= 8 (every C API block, and most Rust ones)
//! the address is the family: 0 mod 16 is pymem, 8 mod 16 is private. Exact,
//! O(1), and needs no memory before the block. Larger alignments cannot be 8
//! mod 16; `overaligned.rs` gives those a header instead.

use core::ptr;

use pyo3_ffi::{PyMem_Calloc, PyMem_Free, PyMem_Malloc, PyMem_Realloc};

use crate::stats::{self, Hot};
use crate::{deferred, python, sys};

/// The largest alignment that address classes serve.
pub(crate) const CLASSED_ALIGN: usize = 8;
/// Where a private block starts inside its `malloc` block.
const PRIVATE_OFFSET: usize = 8;
/// pymem requests are at least this big, so that a block released without the
/// GIL can hold its own deferred-queue node. pymalloc rounds to 16 anyway.
const MIN_PYMEM_REQUEST: usize = core::mem::size_of::<usize>();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Pymem,
    Private,
}

/// The family of an address-classed block (alignment <= 8, or any C API
/// block). Blocks that are not 8-aligned are neither, see `is_plausible`.
#[inline]
pub(crate) fn family_of(block: *const u8) -> Family {
    if block as usize % sys::MALLOC_ALIGN == 0 {
        Family::Pymem
    } else {
        Family::Private
    }
}

/// Whether `block` could be an address-classed block at all: every one is at
/// least 8-aligned.
#[inline]
pub(crate) fn is_plausible(block: *const u8) -> bool {
    block as usize % CLASSED_ALIGN == 0
}

// ---- pymem primitives: the caller holds the main interpreter's GIL ----

/// `PyMem_Malloc`, or `PyMem_Calloc` when `zeroed`. NULL on failure.
///
/// # Safety
/// The calling thread holds the main interpreter's GIL.
#[inline]
pub(crate) unsafe fn pymem_alloc(size: usize, zeroed: bool) -> *mut u8 {
    let size = size.max(MIN_PYMEM_REQUEST);
    // SAFETY: the caller holds the GIL, which is all PyMem needs.
    let block = unsafe {
        if zeroed {
            PyMem_Calloc(1, size)
        } else {
            PyMem_Malloc(size)
        }
    };
    if block.is_null() {
        return ptr::null_mut();
    }
    stats::bump(Hot::PymemAllocs);
    sys::checked_alignment(block.cast(), "PyMem_Malloc")
}

/// `PyMem_Realloc`; on failure NULL, and `block` stays valid.
///
/// # Safety
/// The calling thread holds the main interpreter's GIL; `block` is a live
/// pymem block of the main interpreter.
#[inline]
pub(crate) unsafe fn pymem_realloc(block: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: as the caller promises.
    let moved = unsafe { PyMem_Realloc(block.cast(), size.max(MIN_PYMEM_REQUEST)) };
    if moved.is_null() {
        return ptr::null_mut();
    }
    sys::checked_alignment(moved.cast(), "PyMem_Realloc")
}

/// # Safety
/// The calling thread holds the main interpreter's GIL; `block` is a live
/// pymem block of the main interpreter, not used afterwards.
#[inline]
pub(crate) unsafe fn pymem_free(block: *mut u8) {
    // SAFETY: as the caller promises.
    unsafe { PyMem_Free(block.cast()) };
    stats::bump(Hot::PymemFrees);
}

/// Releases a pymem block from any thread: `PyMem_Free` with the GIL, the
/// deferred queue without it. `known_size` is a lower bound of its size.
///
/// # Safety
/// `block` is a live pymem block of the main interpreter, not used afterwards.
pub(crate) unsafe fn release_pymem(block: *mut u8, known_size: Option<usize>) {
    if python::holds_main_gil() {
        deferred::on_gil_entry();
        // SAFETY: GIL held (checked), block as the caller promises.
        unsafe { pymem_free(block) }
    } else {
        // SAFETY: as the caller promises.
        unsafe { deferred::defer(block, known_size) }
    }
}

// ---- system primitives: any thread, never calls into Python ----

/// A 16-aligned block from the system allocator, counted as private.
#[inline]
pub(crate) fn system_alloc(size: usize, zeroed: bool) -> *mut u8 {
    let block = sys::malloc_maybe_zeroed(size, zeroed);
    if !block.is_null() {
        stats::bump(Hot::PrivateAllocs);
    }
    block
}

/// # Safety
/// `block` is a live block from `system_alloc`, not used afterwards.
#[inline]
pub(crate) unsafe fn system_free(block: *mut u8) {
    // SAFETY: as the caller promises.
    unsafe { sys::free(block) };
    stats::bump(Hot::PrivateFrees);
}

// ---- address-classed blocks (alignment <= 8): the C API and most of Rust ----

/// A block of `size` bytes, 8-aligned (16 when pymem): pymem if this thread
/// holds the main GIL, private otherwise. NULL on failure.
#[inline]
pub(crate) fn allocate(size: usize, zeroed: bool) -> *mut u8 {
    if python::holds_main_gil() {
        deferred::on_gil_entry();
        // SAFETY: GIL held (checked).
        unsafe { pymem_alloc(size, zeroed) }
    } else {
        private_alloc(size, zeroed)
    }
}

#[inline]
fn private_alloc(size: usize, zeroed: bool) -> *mut u8 {
    let Some(total) = size.checked_add(PRIVATE_OFFSET) else {
        return ptr::null_mut();
    };
    let start = system_alloc(total, zeroed);
    if start.is_null() {
        return ptr::null_mut();
    }
    // In bounds: `total` leaves `size` bytes after the offset.
    start.wrapping_add(PRIVATE_OFFSET)
}

/// Releases an address-classed block from any thread.
///
/// # Safety
/// `block` is a live address-classed block (from `allocate`, `resize` or
/// `PyMem_Malloc` of the main interpreter), not used afterwards.
/// `known_size`, when given, is a lower bound of its size.
#[inline]
pub(crate) unsafe fn release(block: *mut u8, known_size: Option<usize>) {
    match family_of(block) {
        // SAFETY: a private block starts PRIVATE_OFFSET into its malloc block.
        Family::Private => unsafe { system_free(block.wrapping_sub(PRIVATE_OFFSET)) },
        // SAFETY: as the caller promises.
        Family::Pymem => unsafe { release_pymem(block, known_size) },
    }
}

/// Resizes an address-classed block, keeping its family where it can. A pymem
/// block on a thread without the GIL moves to a new private block when its old
/// size is known (the old block is deferred); with no size to copy, the answer
/// is NULL and the block stays valid. NULL on failure, `block` still valid.
///
/// # Safety
/// `block` is a live address-classed block; `old_size`, when given, is its
/// exact usable size as the caller knows it (what `GlobalAlloc` passes).
#[inline]
pub(crate) unsafe fn resize(block: *mut u8, old_size: Option<usize>, new_size: usize) -> *mut u8 {
    match family_of(block) {
        Family::Private => {
            let Some(total) = new_size.checked_add(PRIVATE_OFFSET) else {
                return ptr::null_mut();
            };
            // SAFETY: the malloc block starts PRIVATE_OFFSET before `block`.
            let start = unsafe { sys::realloc(block.wrapping_sub(PRIVATE_OFFSET), total) };
            if start.is_null() {
                return ptr::null_mut();
            }
            start.wrapping_add(PRIVATE_OFFSET)
        }
        Family::Pymem if python::holds_main_gil() => {
            deferred::on_gil_entry();
            // SAFETY: GIL held (checked); `block` is a live pymem block.
            unsafe { pymem_realloc(block, new_size) }
        }
        Family::Pymem => {
            let Some(old_size) = old_size else {
                return ptr::null_mut();
            };
            let moved = private_alloc(new_size, false);
            if moved.is_null() {
                return ptr::null_mut();
            }
            // SAFETY: both blocks are live, distinct, and at least
            // min(old, new) bytes long.
            unsafe {
                ptr::copy_nonoverlapping(block, moved, old_size.min(new_size));
                deferred::defer(block, Some(old_size));
            }
            moved
        }
    }
}
