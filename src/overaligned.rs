//! Blocks whose alignment is above 8, which address classes cannot serve.
//!
//! Both families over-allocate by `align` bytes and keep a 16-byte header just
//! below the pointer they hand out, recording the family and where the
//! underlying block starts (Rust std's aligned fallback does the same). Such
//! blocks exist only inside Rust: `GlobalAlloc::dealloc` knows the alignment
//! and so knows to read the header. C never sees them.

use core::ptr;

use crate::family::{self, Family};
use crate::{deferred, python, sys};

#[repr(C)]
struct Header {
    start: *mut u8,
    tag: usize,
}

const HEADER_SIZE: usize = core::mem::size_of::<Header>();
const PYMEM_TAG: usize = 0x7079_6d65_6d5f_6864; // "pymem_hd"
const PRIVATE_TAG: usize = 0x7072_6976_5f5f_6864; // "priv__hd"

/// A block of `size` bytes aligned to `align` (a power of two above 8), in the
/// family the calling thread may use. NULL on failure.
pub(crate) fn allocate(size: usize, align: usize) -> *mut u8 {
    allocate_maybe_zeroed(size, align, false)
}

/// As `allocate`, zero-filled by `PyMem_Calloc` or `calloc`.
pub(crate) fn allocate_zeroed(size: usize, align: usize) -> *mut u8 {
    allocate_maybe_zeroed(size, align, true)
}

fn allocate_maybe_zeroed(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    debug_assert!(align.is_power_of_two() && align > family::CLASSED_ALIGN);
    let align = align.max(sys::MALLOC_ALIGN);
    // The underlying block is 16-aligned, so the first `align`-aligned address
    // at least HEADER_SIZE past its start is at most `align` past it.
    let Some(total) = size.checked_add(align) else {
        return ptr::null_mut();
    };
    let (start, family) = if python::holds_main_gil() {
        deferred::on_gil_entry();
        // SAFETY: GIL held (checked).
        (unsafe { family::pymem_alloc(total, zeroed) }, Family::Pymem)
    } else {
        (family::system_alloc(total, zeroed), Family::Private)
    };
    if start.is_null() {
        return ptr::null_mut();
    }
    let offset = (start as usize + HEADER_SIZE).next_multiple_of(align) - start as usize;
    let block = start.wrapping_add(offset);
    let tag = match family {
        Family::Pymem => PYMEM_TAG,
        Family::Private => PRIVATE_TAG,
    };
    // SAFETY: HEADER_SIZE <= offset <= align, so the header lies inside the
    // underlying block, before `block`, and is 8-aligned (block is 16-aligned
    // at least, HEADER_SIZE is 16).
    unsafe {
        block
            .sub(HEADER_SIZE)
            .cast::<Header>()
            .write(Header { start, tag })
    };
    block
}

/// Releases an over-aligned block from any thread.
///
/// # Safety
/// `block` came from `allocate`/`allocate_zeroed` with this `align`, is live,
/// and is not used afterwards.
pub(crate) unsafe fn release(block: *mut u8, align: usize) {
    // SAFETY: `allocate` wrote a Header right below every block it returned.
    let header = unsafe { block.sub(HEADER_SIZE).cast::<Header>().read() };
    match header.tag {
        // SAFETY: the header says `start` is a live pymem block of at least
        // `align` bytes; the caller gives it up.
        PYMEM_TAG => unsafe { family::release_pymem(header.start, Some(align)) },
        // SAFETY: the header says `start` came from `system_alloc`.
        PRIVATE_TAG => unsafe { family::system_free(header.start) },
        _ => sys::fatal(
            "dealloc",
            "found no pyalloc header before an over-aligned block (wrong layout, or the memory was overwritten)",
        ),
    }
}
