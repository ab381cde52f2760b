//! Handing byte buffers across the language boundary: a Rust `Vec<u8>` out
//! as a block that C may `PyMem_Free`, and a `PyMem_Malloc` block from C in as
//! a `Vec<u8>`. Zero-copy when `PyAlloc` is the global allocator and the block
//! is in the pymem family; one copy otherwise (counted as `rehomed`).

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::alloc::{handle_alloc_error, Layout};
use std::mem::ManuallyDrop;

use crate::family::{self, Family};
use crate::stats::{self, REHOMED};
use crate::{deferred, python};

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
// on any thread (without the GIL it is queued, see `family::release_pymem`).
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
        // SAFETY: the block is a live pymem block owned by `self`.
        unsafe { family::release_pymem(self.block.as_ptr(), Some(self.capacity)) }
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
/// // No interpreter runs here, so no thread holds its GIL: the vector is
/// // private memory and comes back untouched.
/// let bytes = b"not yet".to_vec();
/// assert!(!pyalloc::holds_main_gil());
/// assert_eq!(pyalloc::into_pymem(bytes).unwrap_err(), b"not yet");
/// assert!(pyalloc::stats().private_allocs > 0);
/// ```
pub fn into_pymem(bytes: Vec<u8>) -> Result<PyMemBlock, Vec<u8>> {
    if !python::holds_main_gil() {
        return Err(bytes);
    }
    deferred::on_gil_entry();
    let len = bytes.len();
    if bytes.capacity() > 0 && is_global_allocator() && family::family_of(bytes.as_ptr()) == Family::Pymem {
        let mut bytes = ManuallyDrop::new(bytes);
        return Ok(PyMemBlock {
            // SAFETY: a Vec with capacity > 0 has a non-null buffer.
            block: unsafe { NonNull::new_unchecked(bytes.as_mut_ptr()) },
            len,
            capacity: bytes.capacity(),
        });
    }
    // SAFETY: GIL held (checked above).
    let block = unsafe { family::pymem_alloc(len, false) };
    let Some(block) = NonNull::new(block) else {
        return Err(bytes);
    };
    // SAFETY: `block` is a fresh block of at least `len` bytes, distinct from
    // the vector's buffer.
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), block.as_ptr(), len) };
    if bytes.capacity() > 0 {
        REHOMED.fetch_add(1, Relaxed);
    }
    Ok(PyMemBlock {
        block,
        len,
        capacity: len,
    })
}

/// Takes ownership of a block that C allocated with `PyMem_Malloc` (or any
/// pymem block, e.g. from `pyalloc_malloc` under the GIL) as a `Vec<u8>` of
/// `len` bytes. Callable from any thread: the vector may be dropped anywhere.
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
        // SAFETY: the caller gives up a live pymem block.
        unsafe { family::release_pymem(block, None) };
        return Vec::new();
    }
    if is_global_allocator() && family::family_of(block) == Family::Pymem {
        // SAFETY: the global allocator is PyAlloc, which will release this
        // address-classed pymem block (align 1, size `len`) correctly: its
        // address says pymem, `len` is a lower bound of its size, and it holds
        // `len` initialised bytes.
        return unsafe { Vec::from_raw_parts(block, len, len) };
    }
    let mut copy = Vec::new();
    if copy.try_reserve_exact(len).is_err() {
        handle_alloc_error(Layout::array::<u8>(len).unwrap_or(Layout::new::<u8>()));
    }
    // SAFETY: `block` holds `len` initialised bytes (caller's promise); the
    // copy has room for `len` and does not overlap; then the block is released
    // exactly once.
    unsafe {
        ptr::copy_nonoverlapping(block, copy.as_mut_ptr(), len);
        copy.set_len(len);
        family::release_pymem(block, Some(len));
    }
    copy
}

/// Whether `PyAlloc` is this program's `#[global_allocator]`: true when a
/// fresh allocation on this thread shows up in this thread's counters (no
/// other thread's allocations can). Probed once, then cached.
pub fn is_global_allocator() -> bool {
    const UNKNOWN: u8 = 0;
    const YES: u8 = 1;
    const NO: u8 = 2;
    static ANSWER: AtomicU8 = AtomicU8::new(UNKNOWN);
    match ANSWER.load(Relaxed) {
        YES => true,
        NO => false,
        _ => {
            // The first allocation gives this thread its counters.
            drop(std::hint::black_box(Box::new(0u8)));
            let before = stats::this_thread_allocs();
            drop(std::hint::black_box(Box::new(0u8)));
            let after = stats::this_thread_allocs();
            match (before, after) {
                (Some(before), Some(after)) => {
                    let yes = after > before;
                    ANSWER.store(if yes { YES } else { NO }, Relaxed);
                    yes
                }
                // This thread has no counters of its own (its thread-locals
                // are gone): no answer to cache; "no" only costs a copy.
                _ => false,
            }
        }
    }
}
