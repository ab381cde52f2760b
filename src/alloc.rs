//! `PyAlloc`, the `GlobalAlloc` that sends Rust's heap to CPython's PyMem
//! family where that is sound and to pyalloc's private heap everywhere else.

use core::alloc::{GlobalAlloc, Layout};

use crate::family::{self, overaligned, PyMemOwner};
use crate::pymem;

/// A global allocator on CPython's `PyMem_*` heap.
///
/// On a thread attached to the main interpreter (holding its GIL), blocks
/// come from `PyMem_Malloc`/`PyMem_Calloc`, so tracemalloc sees them and the
/// debug hooks check them. Everywhere else (GIL released, Rust worker
/// threads, before `Py_Initialize` and after `Py_FinalizeEx`,
/// subinterpreters) they come from pyalloc's private heap, with no call into
/// Python. Either kind may be freed on any thread: a PyMem block dropped
/// where PyMem may not be called is queued and freed by the next thread that
/// enters pyalloc holding the main interpreter's GIL.
///
/// Install it in the final artifact (an extension module, a program):
///
/// ```text
/// #[global_allocator]
/// static GLOBAL: pyalloc::PyAlloc = pyalloc::PyAlloc;
/// ```
///
/// # Interpreter lifetimes
///
/// An embedder that calls `Py_FinalizeEx` and then `Py_Initialize` again
/// empties every `static` or thread-local collection filled under the GIL
/// before `Py_FinalizeEx`: the crate docs, Limits (Finalization), say why.
/// The other guarantees and limits are there too.
#[derive(Clone, Copy, Debug, Default)]
pub struct PyAlloc;

// SAFETY: every method returns NULL or a block that meets the layout
// (alignment up to 8 from either family as is, `overaligned` above), contains
// no panicking code, and routes each block back to the family that made it,
// which `private::classify` or the over-aligned header tells exactly.
unsafe impl GlobalAlloc for PyAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        allocate(layout, false)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        allocate(layout, true)
    }

    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if layout.align() <= pymem::ALIGN {
            // SAFETY: GlobalAlloc's contract: `block` came from this allocator
            // with `layout` (or from `vec_from_pymem`, a main-interpreter
            // PyMem block), so it is live and `layout.size()` long.
            unsafe { family::release(block, Some(layout.size()), PyMemOwner::MainInterpreter) }
        } else {
            // SAFETY: as above; over-aligned blocks carry their header.
            unsafe { overaligned::release(block, layout.size(), layout.align()) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= pymem::ALIGN {
            // SAFETY: as in `dealloc`; `layout.size()` is the exact old size.
            unsafe { family::resize(block, Some(layout.size()), new_size, PyMemOwner::MainInterpreter) }
        } else {
            // SAFETY: as in `dealloc`.
            unsafe { overaligned::resize(block, layout.size(), layout.align(), new_size) }
        }
    }
}

/// A block for `layout` in the family the caller may use, zero-filled when
/// `zeroed`; NULL when out of memory.
#[inline]
fn allocate(layout: Layout, zeroed: bool) -> *mut u8 {
    if layout.align() <= pymem::ALIGN {
        family::allocate(layout.size(), zeroed)
    } else {
        overaligned::allocate(layout.size(), layout.align(), zeroed)
    }
}
