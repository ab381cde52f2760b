//! A program whose global allocator wraps `PyAlloc` and moves every block
//! 16 bytes on, as allocators that add a tracking header do. Such a
//! program's buffers are not pyalloc's blocks: `is_global_allocator` says
//! so, and the hand-offs copy rather than give C an interior pointer.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::OnceLock;

use pyalloc::PyAlloc;
use pyo3_ffi as ffi;

struct HeaderAdding;

/// The header before a block of `layout`: 16 bytes, or its alignment.
fn header(layout: Layout) -> usize {
    layout.align().max(16)
}

fn inner(layout: Layout) -> Layout {
    Layout::from_size_align(layout.size() + header(layout), header(layout)).expect("a valid layout")
}

// SAFETY: every block is PyAlloc's block for `inner(layout)`, moved on by
// the header, a multiple of the layout's alignment, within that block.
unsafe impl GlobalAlloc for HeaderAdding {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: a valid non-zero layout.
        let block = unsafe { PyAlloc.alloc(inner(layout)) };
        if block.is_null() {
            block
        } else {
            block.wrapping_add(header(layout))
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: `alloc` made it a header into PyAlloc's block.
        unsafe { PyAlloc.dealloc(block.sub(header(layout)), inner(layout)) }
    }
}

#[global_allocator]
static GLOBAL: HeaderAdding = HeaderAdding;

fn with_gil<T>(job: impl FnOnce() -> T) -> T {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        // SAFETY: initialised once; the GIL is released for the tests.
        unsafe {
            ffi::Py_InitializeEx(0);
            ffi::PyEval_SaveThread();
        }
    });
    // SAFETY: the interpreter runs; Ensure and Release pair up.
    unsafe {
        let state = ffi::PyGILState_Ensure();
        let result = job();
        ffi::PyGILState_Release(state);
        result
    }
}

#[test]
fn buffers_of_a_wrapping_allocator_are_copied_not_handed_over() {
    assert!(!pyalloc::is_global_allocator());
    with_gil(|| {
        let before = pyalloc::stats();
        let bytes = b"not a block of pyalloc's".to_vec();
        let address = bytes.as_ptr();
        let block = pyalloc::into_pymem(bytes).expect("the GIL is held");
        assert_ne!(
            block.as_ptr().cast_const(),
            address,
            "a copy, not the interior pointer"
        );
        assert_eq!(block.as_slice(), b"not a block of pyalloc's");
        assert_eq!(pyalloc::stats().rehomed, before.rehomed + 1);
        // SAFETY: a live block that `into_pymem` made.
        assert!(unsafe { pyalloc::is_pymem(block.as_ptr()) });

        // C's PyMem block taken by Rust: copied into the wrapper's heap.
        // SAFETY: the GIL is held.
        let c_block = unsafe { ffi::PyMem_Malloc(5) }.cast::<u8>();
        // SAFETY: a fresh 5-byte block.
        unsafe { c_block.copy_from_nonoverlapping(b"hello".as_ptr(), 5) };
        // SAFETY: a live PyMem block of 5 initialised bytes, given up.
        let owned = unsafe { pyalloc::vec_from_pymem(c_block, 5) };
        assert_ne!(owned.as_ptr(), c_block.cast_const());
        assert_eq!(owned, b"hello");
    });
}
