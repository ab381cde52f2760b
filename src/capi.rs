//! The C API, declared in `include/pyalloc.h`. Every function runs inside a
//! panic boundary and answers bad input with NULL, 0 or nothing, as each
//! documents; none of them needs the GIL unless it says so.

use core::ffi::{c_char, c_void};
use core::ptr;
use core::sync::atomic::Ordering::Relaxed;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::family::{self, Family};
use crate::stats::{self, Stats, INVALID_POINTERS, REHOMED};
use crate::{deferred, python};

/// Runs `body`, turning a panic into `fallback`: no unwind crosses into C.
pub(crate) fn boundary<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Counts and refuses a pointer that no allocator pyalloc knows returns.
fn refuse_invalid(block: *const u8) -> bool {
    let invalid = !family::is_plausible(block);
    if invalid {
        INVALID_POINTERS.fetch_add(1, Relaxed);
    }
    invalid
}

/// Allocates `size` bytes from any thread, GIL or not.
///
/// With the main interpreter's GIL held the block comes from `PyMem_Malloc`
/// (`pyalloc_is_pymem` is true, C may `PyMem_Free` it, tracemalloc sees it);
/// otherwise from the system allocator. The block is 16-byte aligned when
/// pymem and 8-byte aligned when private. `size == 0` gives a unique
/// non-NULL pointer. Returns NULL when out of memory.
#[no_mangle]
pub extern "C" fn pyalloc_malloc(size: usize) -> *mut c_void {
    boundary(ptr::null_mut(), || family::allocate(size, false).cast())
}

/// Allocates `nmemb * size` zeroed bytes (`PyMem_Calloc` or `calloc`, never
/// malloc + memset). Returns NULL when the product overflows or when out of
/// memory.
#[no_mangle]
pub extern "C" fn pyalloc_calloc(nmemb: usize, size: usize) -> *mut c_void {
    boundary(ptr::null_mut(), || match nmemb.checked_mul(size) {
        Some(total) => family::allocate(total, true).cast(),
        None => ptr::null_mut(),
    })
}

/// Resizes a block from `pyalloc_malloc`/`pyalloc_calloc`/`pyalloc_realloc`,
/// or from C's own `PyMem_Malloc`, keeping its contents up to the smaller size.
///
/// `ptr == NULL` acts as `pyalloc_malloc(size)`. `size == 0` resizes to an
/// empty block and returns a unique non-NULL pointer (as `PyMem_Realloc`
/// does; it does not free). Returns NULL, leaving the block valid and
/// unchanged, when out of memory, when `ptr` is not 8-byte aligned (counted
/// in `invalid_pointers`), or when `ptr` is a pymem block and this thread
/// does not hold the GIL: the C API cannot know a pymem block's size, so it
/// cannot move it.
///
/// # Safety
/// `ptr` is NULL or a live block from one of the allocators above.
#[no_mangle]
pub unsafe extern "C" fn pyalloc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    boundary(ptr::null_mut(), || {
        let block = ptr.cast::<u8>();
        if block.is_null() {
            return family::allocate(size, false).cast();
        }
        if refuse_invalid(block) {
            return ptr::null_mut();
        }
        // SAFETY: the caller passes a live address-classed block.
        unsafe { family::resize(block, None, size).cast() }
    })
}

/// Releases a block from `pyalloc_malloc`/`pyalloc_calloc`/`pyalloc_realloc`,
/// from C's `PyMem_Malloc`, or a buffer Rust handed over, on any thread. A
/// pymem block freed without the GIL is queued and freed by the next GIL
/// holder (see `pyalloc_collect`). NULL is ignored; so is a pointer that is
/// not 8-byte aligned, which no allocator here returns (counted in
/// `invalid_pointers`).
///
/// # Safety
/// `ptr` is NULL or a live block from one of the allocators above, not used
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn pyalloc_free(ptr: *mut c_void) {
    boundary((), || {
        let block = ptr.cast::<u8>();
        if block.is_null() || refuse_invalid(block) {
            return;
        }
        // SAFETY: the caller gives up a live address-classed block.
        unsafe { family::release(block, None) }
    })
}

/// True when C may release `ptr` with `PyMem_Free` (holding the GIL): the
/// block is in the main interpreter's PyMem heap. False for NULL and for
/// private blocks, which only `pyalloc_free` may release. Only the address is
/// read, so any pointer is accepted; the answer is meaningful for live blocks
/// from the allocators above.
#[no_mangle]
pub extern "C" fn pyalloc_is_pymem(ptr: *const c_void) -> bool {
    let block = ptr.cast::<u8>();
    !block.is_null() && family::is_plausible(block) && family::family_of(block) == Family::Pymem
}

/// Returns a block that C may release with `PyMem_Free` holding the first
/// `len` bytes of `ptr`: `ptr` itself when it is already pymem, otherwise a
/// new `PyMem_Malloc` copy, and `ptr` is freed (counted in `rehomed`).
///
/// Needs the main interpreter's GIL. Returns NULL, leaving `ptr` valid and
/// untouched, when this thread does not hold it, when `ptr` is NULL or not
/// 8-byte aligned, or when out of memory.
///
/// # Safety
/// `ptr` is NULL or a live block from one of the allocators above, holding at
/// least `len` bytes. On a non-NULL return the caller owns only the result.
#[no_mangle]
pub unsafe extern "C" fn pyalloc_into_pymem(ptr: *mut c_void, len: usize) -> *mut c_void {
    boundary(ptr::null_mut(), || {
        let block = ptr.cast::<u8>();
        if block.is_null() || refuse_invalid(block) || !python::holds_main_gil() {
            return ptr::null_mut();
        }
        deferred::on_gil_entry();
        if family::family_of(block) == Family::Pymem {
            return ptr;
        }
        // SAFETY: GIL held (checked above).
        let copy = unsafe { family::pymem_alloc(len, false) };
        if copy.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: `block` holds at least `len` bytes (caller's promise), the
        // copy is fresh and as long; the private block is released once.
        unsafe {
            ptr::copy_nonoverlapping(block, copy, len);
            family::release(block, Some(len));
        }
        REHOMED.fetch_add(1, Relaxed);
        copy.cast()
    })
}

/// Frees now every pymem block that was released on a thread without the GIL
/// and returns how many. Needs the main interpreter's GIL: without it, frees
/// nothing and returns 0.
#[no_mangle]
pub extern "C" fn pyalloc_collect() -> usize {
    boundary(0, || {
        if python::holds_main_gil() {
            // SAFETY: GIL held (checked).
            unsafe { deferred::drain() }
        } else {
            0
        }
    })
}

/// Writes a snapshot of pyalloc's counters to `*out`. NULL is ignored. Cheap
/// enough to call often; callable from any thread.
///
/// # Safety
/// `out` is NULL or points to writable memory for one `pyalloc_stats`.
#[no_mangle]
pub unsafe extern "C" fn pyalloc_stats_get(out: *mut Stats) {
    boundary((), || {
        if !out.is_null() {
            // SAFETY: the caller promises `out` is writable.
            unsafe { out.write(stats::snapshot()) };
        }
    })
}

/// The library's version, as `PYALLOC_VERSION` in this header: a static
/// NUL-terminated string, never NULL.
#[no_mangle]
pub extern "C" fn pyalloc_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
