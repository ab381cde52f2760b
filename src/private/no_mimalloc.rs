//! `mimalloc.rs`'s stand-in in a build without the `mimalloc` feature: the
//! system allocator serves every private block (`bypassed` is always true),
//! so a block that claims mimalloc is a corrupted mark.

use crate::sys;

pub(super) fn configure() {}

#[inline]
pub(super) fn bypassed() -> bool {
    true
}

pub(super) fn allocate(_total: usize, _zeroed: bool) -> *mut u8 {
    unreachable_backend()
}

/// # Safety
/// None needed: it never returns.
pub(super) unsafe fn resize(_start: *mut u8, _total: usize) -> *mut u8 {
    unreachable_backend()
}

/// # Safety
/// None needed: it never returns.
pub(super) unsafe fn release(_start: *mut u8, _total: Option<usize>) {
    unreachable_backend()
}

/// # Safety
/// None needed: it never returns.
pub(super) unsafe fn usable_size(_block: *mut u8) -> usize {
    unreachable_backend()
}

#[cold]
fn unreachable_backend() -> ! {
    sys::fatal(
        "the private heap",
        "found a block of a backend this build does not have",
    )
}
