//! Handing byte buffers across the language boundary: a Rust `Vec<u8>` out
//! as a block that C may `PyMem_Free`, and a `PyMem_Malloc` block from C in as
//! a `Vec<u8>`. Zero-copy when `PyAlloc` is the global allocator and the block
//! is a PyMem block; one copy otherwise (counted as `rehomed`).

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::alloc::{handle_alloc_error, Layout};
use std::mem::ManuallyDrop;

use crate::family::handoff::{self, is_global_allocator};
use crate::family::{self, PyMemOwner};
use crate::sys;

/// Says once, on stderr, that a hand-off copied because `PyAlloc` is not the
/// global allocator: the program works, but not as it was meant to.
fn warn_copy_without_global_allocator() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Relaxed) {
        sys::warn_parts(&[
            "pyalloc: a buffer handed between Rust and C was copied because PyAlloc is not this program's \
             #[global_allocator]; declare it, or build with pyalloc's global-allocator feature \
             (pyalloc.setuptools does); this is said once\n",
        ]);
    }
}

/// A byte buffer in the main interpreter's PyMem heap: C may release it with
/// `PyMem_Free` (holding the GIL). Dropped in Rust, it is released with
/// `PyMem_Free`, or queued for a GIL holder when dropped without the GIL.
#[derive(Debug)]
pub struct PyMemBlock {
    block: NonNull<u8>,
    len: usize,
    /// A lower bound of the block's size, for the deferred queue.
    capacity: usize,
}

// SAFETY: the block is plain bytes owned by this value; releasing it is sound
// on any thread (where PyMem may not be called it is queued, see
// `family::release_pymem`).
unsafe impl Send for PyMemBlock {}
// SAFETY: shared access only reads the bytes.
unsafe impl Sync for PyMemBlock {}

impl PyMemBlock {
    /// The start of the bytes; never NULL, even for an empty buffer.
    pub fn as_ptr(&self) -> *mut u8 {
        self.block.as_ptr()
    }

    /// How many bytes the buffer holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no bytes (it is still a real PyMem block).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `block` is live and holds `len` initialised bytes.
        unsafe { core::slice::from_raw_parts(self.block.as_ptr(), self.len) }
    }

    /// Gives the block to C: the caller must release the pointer exactly once,
    /// with `PyMem_Free` (GIL held) or `pyalloc_free` (any thread).
    #[must_use = "the block leaks unless C frees it"]
    pub fn into_raw(self) -> (*mut u8, usize) {
        let this = ManuallyDrop::new(self);
        (this.block.as_ptr(), this.len)
    }
}

impl Drop for PyMemBlock {
    fn drop(&mut self) {
        // SAFETY: the block is a live main-interpreter PyMem block owned by
        // `self`, at least `capacity` bytes long.
        unsafe {
            family::release_pymem(
                self.block.as_ptr(),
                Some(self.capacity),
                PyMemOwner::MainInterpreter,
            )
        }
    }
}

/// Turns `bytes` into a block that C may `PyMem_Free`. Needs the calling
/// thread to hold the main interpreter's GIL; without it, or when PyMem is out
/// of memory, the vector comes back unchanged as `Err`.
///
/// The same memory when `PyAlloc` is the global allocator and the vector was
/// built under the GIL; otherwise a copy (counted in `Stats::rehomed`).
///
/// ```
/// // No interpreter runs here, so no thread holds its GIL: the vector
/// // comes back untouched.
/// let bytes = b"not yet".to_vec();
/// assert!(!pyalloc::holds_main_gil());
/// assert_eq!(pyalloc::into_pymem(bytes).unwrap_err(), b"not yet");
/// ```
pub fn into_pymem(bytes: Vec<u8>) -> Result<PyMemBlock, Vec<u8>> {
    let Some(gil) = family::enter_with_main_gil() else {
        return Err(bytes);
    };
    let len = bytes.len();
    // An empty vector has no block to probe or hand over.
    let ours = bytes.capacity() > 0 && is_global_allocator();
    // SAFETY: with capacity, the vector's buffer is a live block of the
    // global allocator.
    if ours && unsafe { family::is_pymem(bytes.as_ptr().cast_mut()) } {
        // A Vec with capacity > 0 has a non-null buffer.
        if let Some(block) = NonNull::new(bytes.as_ptr().cast_mut()) {
            let bytes = ManuallyDrop::new(bytes);
            return Ok(PyMemBlock {
                block,
                len,
                capacity: bytes.capacity(),
            });
        }
    }
    if bytes.capacity() > 0 && !ours {
        warn_copy_without_global_allocator();
    }
    // SAFETY: the vector holds `len` readable bytes.
    let copy = unsafe { handoff::pymem_copy(&gil, bytes.as_ptr(), len) };
    let Some(block) = NonNull::new(copy) else {
        return Err(bytes);
    };
    Ok(PyMemBlock {
        block,
        len,
        capacity: len,
    })
}

/// Takes ownership of a block that C allocated with `PyMem_Malloc` (or any
/// main-interpreter PyMem block, e.g. from `pyalloc_malloc` under the GIL) as
/// a `Vec<u8>` of `len` bytes. Callable from any thread: the vector may be
/// dropped anywhere.
///
/// Zero-copy when `PyAlloc` is the global allocator. Otherwise the bytes are
/// copied and the block released (`PyMem_Free` with the GIL, queued without).
/// A NULL `block` gives an empty vector; so does `len == 0`, which also
/// releases the block.
///
/// # Safety
/// `block` is NULL or a live block from the main interpreter's
/// `PyMem_Malloc`/`PyMem_Calloc`/`PyMem_Realloc` holding at least `len`
/// initialised bytes; the caller gives it up and does not use or free it
/// afterwards.
///
/// # Aborts
/// When it must copy and there is no memory for the copy, like
/// `Vec::with_capacity`.
pub unsafe fn vec_from_pymem(block: *mut u8, len: usize) -> Vec<u8> {
    if block.is_null() {
        return Vec::new();
    }
    if len == 0 {
        // SAFETY: the caller gives up a live PyMem block.
        unsafe { family::release_pymem(block, None, PyMemOwner::MainInterpreter) };
        return Vec::new();
    }
    if is_global_allocator() {
        // SAFETY: the global allocator is PyAlloc, which will release this
        // block (align 1, size `len`) as the PyMem block it is: not private,
        // `len` is a lower bound of its size, and it holds `len` initialised
        // bytes.
        return unsafe { Vec::from_raw_parts(block, len, len) };
    }
    warn_copy_without_global_allocator();
    let mut copy = Vec::new();
    if copy.try_reserve_exact(len).is_err() {
        handle_alloc_error(Layout::array::<u8>(len).unwrap_or(Layout::new::<u8>()));
    }
    // SAFETY: `block` holds `len` initialised bytes (the caller's promise); the
    // copy has room for `len` and does not overlap; then the block is released
    // exactly once.
    unsafe {
        ptr::copy_nonoverlapping(block, copy.as_mut_ptr(), len);
        copy.set_len(len);
        family::release_pymem(block, Some(len), PyMemOwner::MainInterpreter);
    }
    copy
}
