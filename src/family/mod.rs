//! The family choice: the one place that asks who is calling, and the one
//! place that reads a block's family back.
//!
//! - *pymem*: a thread attached to the main interpreter allocates with
//!   `PyMem_Malloc`/`PyMem_Calloc` (`pymem/`). Headerless, so C may
//!   `PyMem_Free` the block and tracemalloc attributes it to the Python line
//!   that called in.
//! - *private*: every other thread allocates from pyalloc's private heap
//!   (`private/`), with no call into Python at all (but, opt-in on 3.15+,
//!   `PyTraceMalloc_Track`/`Untrack`: `private/tracemalloc.rs`).
//!
//! A block's family is read back exactly from the pointer alone:
//! `private::classify` recognises private blocks, and everything else is a
//! PyMem block. This serves blocks of alignment up to `pymem::ALIGN` (every
//! C API block, and most of Rust's); `overaligned.rs` builds larger
//! alignments on top, and `handoff.rs` moves blocks between the families
//! for the Rust and C hand-over functions.
//!
//! Who is calling is a question (`cpython::attached_interpreter`, which
//! changes nothing). What a thread holding the main GIL does on the way in
//! (`gil_entry_if_held`: free what others queued, track the interpreter's
//! lifetime) is a step each entry point below takes by name.

pub(crate) mod handoff;
pub(crate) mod overaligned;

use core::ptr;

use crate::cpython::{self, Attached, Interpreter, MainGil};
use crate::private::{self, Found, PrivateBlock};
use crate::pymem::{self, queue};

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

/// The token that reaches the heap of a PyMem block owned by `owner`, when
/// the calling thread may use that heap.
fn heap_of(caller: &Interpreter, owner: PyMemOwner) -> Option<&Attached> {
    match (caller, owner) {
        (Interpreter::Main(gil), _) => Some(gil),
        (Interpreter::Subinterpreter(gil), PyMemOwner::CallingInterpreter) => Some(gil),
        _ => None,
    }
}

/// The calling thread's proof that it holds the main GIL, after its entry
/// housekeeping (`gil_entry_if_held`); None when it does not hold it.
pub(crate) fn enter_with_main_gil() -> Option<MainGil> {
    let caller = cpython::attached_interpreter();
    gil_entry_if_held(&caller);
    match caller {
        Interpreter::Main(gil) => Some(gil),
        _ => None,
    }
}

/// The entry housekeeping of a thread holding the main GIL as it enters
/// pyalloc (`pymem/queue.rs`): tracks this interpreter lifetime (once) and
/// frees the blocks others queued. Two relaxed loads when there is nothing
/// to do.
#[inline]
fn gil_entry_if_held(caller: &Interpreter) {
    if let Interpreter::Main(gil) = caller {
        queue::on_gil_entry(gil);
    }
}

/// Frees the deferred blocks of the current lifetime; how many. 0 unless the
/// caller is attached to the main interpreter.
pub(crate) fn collect() -> usize {
    match cpython::attached_interpreter() {
        Interpreter::Main(gil) => queue::on_gil_entry(&gil) + queue::drain(&gil),
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
    allocate_asking(size, zeroed)
}

/// `allocate` where the quick read could not say "not attached": asks.
/// Left to the optimiser: forced out of line (`inline(never)`), the private
/// pair took 8-11 fewer instructions where `allocate` stays a function of
/// its own, but the GIL-held pair took 8-10 more where `allocate` is
/// inlined into its caller, as in the benchmark's loop
/// (`scripts/count-instructions.sh`).
#[inline]
fn allocate_asking(size: usize, zeroed: bool) -> *mut u8 {
    match cpython::attached_interpreter() {
        Interpreter::Main(gil) => {
            cpython::confirm_quick_read(&gil);
            queue::on_gil_entry(&gil);
            pymem::allocate(&gil, size, zeroed)
        }
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
    !block.is_null() && block as usize % pymem::ALIGN == 0 && unsafe { private::classify(block) }.is_none()
}

/// Releases a block of either family, from any thread. `size`, when known, is
/// a lower bound of its size.
///
/// # Safety
/// `block` is a live private block, or a live PyMem block of the heap `owner`
/// names; nothing uses it afterwards.
#[inline(always)]
pub(crate) unsafe fn release(block: *mut u8, size: Option<usize>, owner: PyMemOwner) {
    // SAFETY: a live block, as the caller promises.
    match unsafe { private::classify_quickly(block) } {
        Found::Private(private) => {
            // SAFETY: the caller gives the block up.
            if unsafe { !private.release_quickly(size) } {
                // SAFETY: as above.
                unsafe { release_private(private, size) }
            }
        }
        // SAFETY: as the caller promises.
        Found::Other => unsafe { release_pymem(block, size, owner) },
        // SAFETY: as the caller promises.
        Found::Unknown => unsafe { release_unclassified(block, size, owner) },
    }
}

/// `release` of a private block that the thread's cache does not take
/// without a call.
///
/// # Safety
/// The block is live and given up.
#[inline(never)]
unsafe fn release_private(block: PrivateBlock, size: Option<usize>) {
    // SAFETY: as the caller promises.
    unsafe { block.release(size) }
}

/// `release` before this copy's private heap is set up.
///
/// # Safety
/// As `release`.
#[cold]
#[inline(never)]
unsafe fn release_unclassified(block: *mut u8, size: Option<usize>, owner: PyMemOwner) {
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
    let caller = cpython::attached_interpreter();
    gil_entry_if_held(&caller);
    match heap_of(&caller, owner) {
        // SAFETY: a block of the heap the token reaches (`owner` says whose
        // it is), given up by the caller.
        Some(gil) => unsafe { pymem::release(gil, block) },
        // SAFETY: a main-interpreter block (the caller's promise), given up.
        None => unsafe { queue::defer(block, size) },
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
    let caller = cpython::attached_interpreter();
    gil_entry_if_held(&caller);
    match heap_of(&caller, owner) {
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
                    queue::defer(block, Some(old_size));
                }
            }
            moved
        }
    }
}
