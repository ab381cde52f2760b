//! `PyAlloc`, the `GlobalAlloc` that sends Rust's heap to CPython's PyMem
//! family where that is sound and to the system allocator everywhere else.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;

use crate::{family, overaligned};

/// A global allocator on CPython's `PyMem_*` heap.
///
/// On a thread that holds the main interpreter's GIL, blocks come from
/// `PyMem_Malloc`/`PyMem_Calloc`, so tracemalloc sees them and the debug hooks
/// check them. Everywhere else (GIL released, Rust worker threads, before
/// `Py_Initialize` and after `Py_FinalizeEx`, subinterpreters) they come from
/// the system allocator, with no call into Python. Either kind may be freed
/// on any thread: a PyMem block dropped without the GIL is queued and freed by
/// the next GIL holder.
///
/// ```text
/// #[global_allocator]
/// static GLOBAL: pyalloc::PyAlloc = pyalloc::PyAlloc;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct PyAlloc;

// SAFETY: every method returns NULL or a block that meets the layout (address
// classes for alignment <= 8, `overaligned` above), never unwinds (no
// panicking code on these paths), and routes each block back to the family
// that made it, which `family_of` or the over-aligned header tells exactly.
unsafe impl GlobalAlloc for PyAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= family::CLASSED_ALIGN {
            family::allocate(layout.size(), false)
        } else {
            overaligned::allocate(layout.size(), layout.align())
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= family::CLASSED_ALIGN {
            family::allocate(layout.size(), true)
        } else {
            overaligned::allocate_zeroed(layout.size(), layout.align())
        }
    }

    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if layout.align() <= family::CLASSED_ALIGN {
            // SAFETY: GlobalAlloc's contract: `block` came from this allocator
            // with `layout`, so it is address-classed and `layout.size()` long.
            unsafe { family::release(block, Some(layout.size())) }
        } else {
            // SAFETY: as above; over-aligned blocks carry their header.
            unsafe { overaligned::release(block, layout.align()) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= family::CLASSED_ALIGN {
            // SAFETY: as in `dealloc`; `layout.size()` is the exact old size.
            return unsafe { family::resize(block, Some(layout.size()), new_size) };
        }
        // Over-aligned: allocate, copy, free (the offset to the alignment
        // boundary may change, so an in-place realloc cannot keep it).
        let moved = overaligned::allocate(new_size, layout.align());
        if !moved.is_null() {
            // SAFETY: both blocks are live and distinct, each at least
            // min(old, new) bytes; the old one is released exactly once.
            unsafe {
                ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                overaligned::release(block, layout.align());
            }
        }
        moved
    }
}
