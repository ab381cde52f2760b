//! Blocks whose alignment is above 8, which neither family serves without a
//! header (PyMem promises 8; a private block sits at 16 mod 32).
//!
//! An over-aligned block is built inside an ordinary block of either family,
//! `align + HEADER` bytes larger, with a header just below the pointer it
//! hands out that records where the inner block starts (Rust std's aligned
//! fallback does the same). Releasing it releases the inner block, whose
//! family is read back as any block's is. Such blocks exist only inside Rust:
//! `GlobalAlloc` knows their alignment, so it knows to read the header; C
//! never sees them.

use core::ptr;

use super::PyMemOwner;
use crate::pymem;
use crate::sys;

#[repr(C)]
struct Header {
    inner: *mut u8,
    magic: usize,
}

const HEADER: usize = core::mem::size_of::<Header>();
const MAGIC: usize = usize::from_le_bytes(*b"pyal-hdr");

/// The inner block's size for a block of `size` bytes aligned to `align`:
/// room for the header and for the distance to the next `align` boundary.
fn inner_size(size: usize, align: usize) -> Option<usize> {
    size.checked_add(align)?.checked_add(HEADER)
}

/// A block of `size` bytes aligned to `align`, in the family the caller
/// may use; zero-filled when `zeroed`. NULL on failure, and for an `align`
/// that is not a power of two above 8 (`Layout` never gives one).
pub(crate) fn allocate(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    if !align.is_power_of_two() || align <= pymem::ALIGN {
        return ptr::null_mut();
    }
    let Some(total) = inner_size(size, align) else {
        return ptr::null_mut();
    };
    let inner = super::allocate(total, zeroed);
    if inner.is_null() {
        return ptr::null_mut();
    }
    let offset = (inner as usize + HEADER).next_multiple_of(align) - inner as usize;
    let block = inner.wrapping_add(offset);
    // SAFETY: HEADER <= offset < HEADER + align, so the header lies inside the
    // inner block, just below `block`, and is 16-aligned (block is aligned to
    // `align` >= 16); `size` bytes remain after `block`.
    unsafe {
        block
            .sub(HEADER)
            .cast::<Header>()
            .write(Header { inner, magic: MAGIC })
    };
    block
}

/// Releases an over-aligned block from any thread.
///
/// # Safety
/// `block` came from `allocate` (or `resize`) with this `align` and a size
/// of at least `size`, is live, and is not used afterwards.
pub(crate) unsafe fn release(block: *mut u8, size: usize, align: usize) {
    // SAFETY: `allocate` wrote a Header right below every block it returned.
    let header = unsafe { block.sub(HEADER).cast::<Header>().read() };
    if header.magic != MAGIC {
        sys::fatal(
            "dealloc",
            "found no pyalloc header before an over-aligned block (wrong layout, or the memory was overwritten)",
        );
    }
    // SAFETY: the inner block is live and at least `inner_size` long; Rust's
    // blocks are never another interpreter's.
    unsafe { super::release(header.inner, inner_size(size, align), PyMemOwner::MainInterpreter) }
}

/// Moves an over-aligned block to a new one of `new_size` bytes: allocate,
/// copy, release (the distance to the alignment boundary may change, so an
/// in-place realloc cannot keep it). NULL on failure, `block` still valid.
///
/// # Safety
/// As `release` with `old_size` its exact size; on success `block` is not
/// used afterwards.
pub(crate) unsafe fn resize(block: *mut u8, old_size: usize, align: usize, new_size: usize) -> *mut u8 {
    let moved = allocate(new_size, align, false);
    if !moved.is_null() {
        // SAFETY: both blocks are live and distinct, each at least
        // min(old, new) bytes; the old one is released exactly once.
        unsafe {
            ptr::copy_nonoverlapping(block, moved, old_size.min(new_size));
            release(block, old_size, align);
        }
    }
    moved
}
