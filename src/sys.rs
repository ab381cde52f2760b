//! The system allocator (`malloc` and friends), which backs the private family
//! and pyalloc's own bookkeeping. Called directly rather than through
//! `std::alloc::System` because the C API frees blocks whose size it does not
//! know, and because it runs inside the global allocator.

use core::ffi::{c_int, c_void};

/// Every block from `malloc`, `calloc` and `realloc` is 16-aligned on the
/// 64-bit targets pyalloc supports; the families' address classes rest on it.
pub(crate) const MALLOC_ALIGN: usize = 16;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("pyalloc's address classes assume a 64-bit target (16-byte malloc alignment)");

extern "C" {
    #[link_name = "malloc"]
    fn c_malloc(size: usize) -> *mut c_void;
    #[link_name = "calloc"]
    fn c_calloc(nmemb: usize, size: usize) -> *mut c_void;
    #[link_name = "realloc"]
    fn c_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    #[link_name = "free"]
    fn c_free(ptr: *mut c_void);
    fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int;
    fn write(fd: c_int, buf: *const c_void, count: usize) -> isize;
    fn abort() -> !;
}

/// `malloc(size)`, or calloc when `zeroed`; NULL on failure.
pub(crate) fn malloc_maybe_zeroed(size: usize, zeroed: bool) -> *mut u8 {
    // SAFETY: malloc and calloc accept any size and report failure as NULL.
    let block = unsafe {
        if zeroed {
            c_calloc(1, size)
        } else {
            c_malloc(size)
        }
    };
    checked_alignment(block.cast(), "malloc")
}

pub(crate) fn malloc(size: usize) -> *mut u8 {
    malloc_maybe_zeroed(size, false)
}

/// `realloc`. On failure returns NULL and `block` stays valid.
///
/// # Safety
/// `block` is NULL or a live block from this module's allocating functions.
pub(crate) unsafe fn realloc(block: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: the caller passes a live malloc block or NULL.
    let moved = unsafe { c_realloc(block.cast(), size) };
    checked_alignment(moved.cast(), "realloc")
}

/// # Safety
/// `block` is NULL or a live block from this module's allocating functions.
pub(crate) unsafe fn free(block: *mut u8) {
    // SAFETY: the caller passes a live malloc block or NULL.
    unsafe { c_free(block.cast()) }
}

/// A block aligned to `align` (a power of two, at least pointer size), freed
/// with `free`; NULL on failure.
pub(crate) fn aligned_alloc(align: usize, size: usize) -> *mut u8 {
    let mut out = core::ptr::null_mut();
    // SAFETY: `out` is a valid place for the result; posix_memalign checks
    // `align` itself and reports failure through its return value.
    match unsafe { posix_memalign(&mut out, align, size) } {
        0 => out.cast(),
        _ => core::ptr::null_mut(),
    }
}

/// Returns `block`, after checking the alignment that the families' address
/// classes depend on. A block that breaks it cannot be classified exactly,
/// so pyalloc stops rather than guess.
#[inline]
pub(crate) fn checked_alignment(block: *mut u8, source: &str) -> *mut u8 {
    if block as usize % MALLOC_ALIGN != 0 {
        fatal(source, "returned a block that is not 16-byte aligned");
    }
    block
}

/// Writes `pyalloc: <source> <what>` to stderr and aborts. Allocates nothing.
#[cold]
pub(crate) fn fatal(source: &str, what: &str) -> ! {
    for part in ["pyalloc: fatal: ", source, " ", what, "\n"] {
        // SAFETY: writes a valid byte slice to fd 2; a failed write changes
        // nothing, since the process aborts next anyway.
        unsafe { write(2, part.as_ptr().cast(), part.len()) };
    }
    // SAFETY: abort takes no arguments and does not return.
    unsafe { abort() }
}
