//! The private heap's backend without the `mimalloc` feature, or with
//! `PYALLOC_PRIVATE_HEAP=system`: the system allocator, as is. Every private
//! block it makes is one `malloc` block, so malloc interposers (memray,
//! heaptrack, valgrind) see each allocation and free.

use crate::sys;

/// A 16-aligned block of `total` bytes, zero-filled when `zeroed`; NULL on
/// failure. 16 is what `malloc` guarantees on every supported target
/// (glibc on 64-bit: 2 * sizeof(size_t); macOS: 16; Windows x64's CRT: 16,
/// `MEMORY_ALLOCATION_ALIGNMENT`); `private::mark` checks it and stops the
/// process with a message rather than mark a misaligned block.
#[inline]
pub(super) fn allocate(total: usize, zeroed: bool) -> *mut u8 {
    sys::malloc(total, zeroed)
}

/// # Safety
/// `start` is a live block from this backend; on success it is not used
/// afterwards.
#[inline]
pub(super) unsafe fn resize(start: *mut u8, total: usize) -> *mut u8 {
    // SAFETY: as the caller promises.
    unsafe { sys::realloc(start, total) }
}

/// # Safety
/// `start` is a live block from this backend, not used afterwards.
#[inline]
pub(super) unsafe fn release(start: *mut u8, _total: Option<usize>) {
    // SAFETY: as the caller promises.
    unsafe { sys::free(start) }
}
