//! The family choice: the one place that asks who is calling, and the one
//! place that reads a block's family back.
//!
//! - *pymem*: a thread attached to the main interpreter allocates with
//!   `PyMem_Malloc`/`PyMem_Calloc` (`pymem.rs`). Headerless, so C may
//!   `PyMem_Free` the block and tracemalloc attributes it to the Python line
//!   that called in.
//! - *private*: every other thread allocates from pyalloc's private heap
//!   (`private/`), with no call into Python at all (but, opt-in on 3.15+,
//!   `PyTraceMalloc_Track`/`Untrack`: `private/tracemalloc.rs`).
//!
//! A block's family is read back exactly from the pointer alone:
//! `private::classify` recognises private blocks, and everything else is a
//! PyMem block. This serves blocks of alignment up to 8 (every C API block,
//! and most of Rust's); `overaligned.rs` builds larger alignments on top.

use core::ptr;
use core::sync::atomic::Ordering::Relaxed;

use crate::cpython::{self, Interpreter};
use crate::pymem::{self, Attached, MainGil};
use crate::stats::REHOMED;
use crate::{deferred, private};

/// The largest alignment a block of either family has without a header:
/// every PyMem block is 8-aligned, every private one 16.
pub(crate) const HEADERLESS_ALIGN: usize = pymem::ALIGN;

/// Who is calling pyalloc, with the proof that PyMem may be used where it may.
pub(crate) enum Caller {
    /// Attached to the main interpreter: PyMem reaches the main heap.
    Main(MainGil),
    /// Attached to a subinterpreter, whose heap may be its own.
    Subinterpreter(Attached),
    /// Attached to no interpreter: PyMem must not be called at all.
    Detached,
}

impl Caller {
    /// The token that reaches the heap of a PyMem block owned by `owner`,
    /// when this caller may use that heap.
    fn heap_of(&self, owner: PyMemOwner) -> Option<&Attached> {
        match (self, owner) {
            (Caller::Main(gil), _) => Some(gil),
            (Caller::Subinterpreter(gil), PyMemOwner::CallingInterpreter) => Some(gil),
            _ => None,
        }
    }
}

/// Whose PyMem heap a block that is not private belongs to, where the
/// caller is attached to a subinterpreter.
#[derive(Clone, Copy)]
pub(crate) enum PyMemOwner {
    /// Rust's allocator and the ownership helpers: pyalloc makes PyMem blocks
    /// only in the main interpreter, so a Rust block is the main heap's.
    MainInterpreter,
    /// The C API, as `PyMem_Free` would: the calling interpreter's heap.
    CallingInterpreter,
}

/// Who is calling. The only place that makes the PyMem tokens; a thread
/// attached to the main interpreter also does the deferred queue's
/// housekeeping here, once per entry.
#[inline]
pub(crate) fn caller() -> Caller {
    caller_and_collected().0
}

/// As `caller`, with how many deferred blocks the housekeeping freed.
#[inline]
fn caller_and_collected() -> (Caller, usize) {
    match cpython::attached_interpreter() {
        Interpreter::Main => {
            // SAFETY: the shims found this thread attached to the main
            // interpreter; nothing inside pyalloc detaches it.
            let gil = unsafe { MainGil::new_unchecked() };
            let freed = deferred::on_gil_entry(&gil);
            (Caller::Main(gil), freed)
        }
        // SAFETY: the shims found this thread attached to an interpreter;
        // nothing inside pyalloc detaches it.
        Interpreter::Other => (Caller::Subinterpreter(unsafe { Attached::new_unchecked() }), 0),
        Interpreter::None => (Caller::Detached, 0),
    }
}

/// Frees the deferred blocks of the current lifetime; how many. 0 unless the
/// caller is attached to the main interpreter.
pub(crate) fn collect() -> usize {
    match caller_and_collected() {
        (Caller::Main(gil), freed) => freed + deferred::drain(&gil),
        _ => 0,
    }
}

/// A block of `size` bytes in the family the caller may use: pymem when
/// attached to the main interpreter (aligned as PyMem aligns, at least 8),
/// private otherwise (16-aligned). NULL when out of memory.
#[inline]
pub(crate) fn allocate(size: usize, zeroed: bool) -> *mut u8 {
    if cpython::certainly_not_attached_to_main() {
        return private::allocate(size, zeroed);
    }
    match caller() {
        Caller::Main(gil) => pymem::allocate(&gil, size, zeroed),
        _ => private::allocate(size, zeroed),
    }
}

/// Whether `block` is a PyMem block (not NULL, 8-aligned, not private).
///
/// # Safety
/// `block` is NULL or a live block of some allocator.
#[inline]
pub(crate) unsafe fn is_pymem(block: *mut u8) -> bool {
    // SAFETY: a live block, as the caller promises (NULL is not read).
    !block.is_null()
        && block as usize % HEADERLESS_ALIGN == 0
        && unsafe { private::classify(block) }.is_none()
}

/// Whether `block` is a private block made by this copy of pyalloc.
///
/// # Safety
/// `block` is a live block of some allocator.
pub(crate) unsafe fn is_own_private(block: *mut u8) -> bool {
    // SAFETY: as the caller promises.
    unsafe { private::is_own(block) }
}

/// Releases a block of either family, from any thread. `size`, when known, is
/// a lower bound of its size.
///
/// # Safety
/// `block` is a live private block, or a live PyMem block of the heap `owner`
/// names; nothing uses it afterwards.
#[inline]
pub(crate) unsafe fn release(block: *mut u8, size: Option<usize>, owner: PyMemOwner) {
    // SAFETY: a live block, as the caller promises.
    match unsafe { private::classify(block) } {
        // SAFETY: the caller gives the block up.
        Some(private) => unsafe { private.release(size) },
        // SAFETY: as the caller promises.
        None => unsafe { release_pymem(block, size, owner) },
    }
}

/// Releases a PyMem block: `PyMem_Free` now where the caller may, otherwise
/// into the deferred queue (main-interpreter blocks only).
///
/// # Safety
/// As `release`, for a block known to be PyMem.
pub(crate) unsafe fn release_pymem(block: *mut u8, size: Option<usize>, owner: PyMemOwner) {
    match caller().heap_of(owner) {
        // SAFETY: a block of the heap the token reaches (`owner` says whose
        // it is), given up by the caller.
        Some(gil) => unsafe { pymem::release(gil, block) },
        // SAFETY: a main-interpreter block (the caller's promise), given up.
        None => unsafe { deferred::defer(block, size) },
    }
}

/// Resizes a block, keeping its family where the caller may. A PyMem block
/// the caller may not touch moves to a new private block when its old size
/// is known (the old block is deferred); with no size to copy, the answer is
/// NULL. NULL on failure too; `block` stays valid whenever NULL is returned.
///
/// # Safety
/// As `release`, except that on NULL the block stays the caller's;
/// `old_size`, when known, is its exact usable size.
pub(crate) unsafe fn resize(
    block: *mut u8,
    old_size: Option<usize>,
    new_size: usize,
    owner: PyMemOwner,
) -> *mut u8 {
    // SAFETY: a live block, as the caller promises.
    if let Some(private) = unsafe { private::classify(block) } {
        // SAFETY: a live private block, as the caller promises.
        return unsafe { private.resize(old_size, new_size) };
    }
    match caller().heap_of(owner) {
        // SAFETY: a live block of the heap the token reaches.
        Some(gil) => unsafe { pymem::resize(gil, block, new_size) },
        None => {
            let Some(old_size) = old_size else {
                return ptr::null_mut();
            };
            let moved = private::allocate(new_size, false);
            if !moved.is_null() {
                // SAFETY: both blocks are live, distinct, and at least
                // min(old, new) bytes long; the old one is a main-interpreter
                // PyMem block (the caller's promise), given up here.
                unsafe {
                    ptr::copy_nonoverlapping(block, moved, old_size.min(new_size));
                    deferred::defer(block, Some(old_size));
                }
            }
            moved
        }
    }
}

/// A block C may `PyMem_Free` holding the first `len` bytes of `block`:
/// `block` itself when it is a PyMem block, otherwise a copy (`pymem_copy`),
/// and the private block is released. NULL when out of memory, `block`
/// untouched.
///
/// # Safety
/// `block` is a live block of pyalloc or PyMem holding at least `len` bytes;
/// on a non-NULL result other than `block`, it is not used afterwards.
pub(crate) unsafe fn into_pymem(gil: &MainGil, block: *mut u8, len: usize) -> *mut u8 {
    // SAFETY: a live block, as the caller promises.
    let Some(private) = (unsafe { private::classify(block) }) else {
        return block;
    };
    // SAFETY: `block` holds at least `len` bytes (the caller's promise).
    let copy = unsafe { pymem_copy(gil, block, len) };
    if !copy.is_null() {
        // SAFETY: the private block is given up once it is copied.
        unsafe { private.release(Some(len)) };
    }
    copy
}

/// A new PyMem block holding a copy of `len` bytes at `source`, counted as
/// re-homed (a block C can `PyMem_Free`, made from one it could not); NULL
/// when out of memory.
///
/// # Safety
/// `source` is readable for `len` bytes.
pub(crate) unsafe fn pymem_copy(gil: &MainGil, source: *const u8, len: usize) -> *mut u8 {
    let copy = pymem::allocate(gil, len, false);
    if !copy.is_null() {
        // SAFETY: `copy` is a fresh block of `len` bytes; `source` is
        // readable for `len` (the caller's promise) and not part of it.
        unsafe { ptr::copy_nonoverlapping(source, copy, len) };
        REHOMED.fetch_add(1, Relaxed);
    }
    copy
}
