//! Moving a block into the PyMem family for C: the copy a hand-over makes
//! when the block is private or `PyAlloc` is not the global allocator
//! (counted as `rehomed`), and the probe that tells which.

use core::ptr;
use core::sync::atomic::Ordering::Relaxed;

use crate::cpython::MainGil;
use crate::private;
use crate::pymem;
use crate::stats::REHOMED;
use crate::sys::KeptAnswer;

/// A block C may `PyMem_Free` holding the first `len` bytes of `block`:
/// `block` itself when it is a PyMem block, otherwise a copy (`pymem_copy`),
/// and the private block is released. NULL when out of memory, `block`
/// untouched.
///
/// # Safety
/// `block` is a live block of pyalloc or PyMem holding at least `len` bytes;
/// on a non-NULL result other than `block`, it is not used afterwards.
pub(crate) unsafe fn into_pymem(gil: &MainGil, block: *mut u8, len: usize) -> *mut u8 {
    // SAFETY: a live block, as the caller promises.
    let Some(private) = (unsafe { private::classify(block) }) else {
        return block;
    };
    // SAFETY: `block` holds at least `len` bytes (the caller's promise).
    let copy = unsafe { pymem_copy(gil, block, len) };
    if !copy.is_null() {
        // SAFETY: the private block is given up once it is copied.
        unsafe { private.release(Some(len)) };
    }
    copy
}

/// A new PyMem block holding a copy of `len` bytes at `source`, counted as
/// re-homed (a block C can `PyMem_Free`, made from one it could not); NULL
/// when out of memory.
///
/// # Safety
/// `source` is readable for `len` bytes.
pub(crate) unsafe fn pymem_copy(gil: &MainGil, source: *const u8, len: usize) -> *mut u8 {
    let copy = pymem::allocate(gil, len, false);
    if !copy.is_null() {
        // SAFETY: `copy` is a fresh block of `len` bytes; `source` is
        // readable for `len` (the caller's promise) and not part of it.
        unsafe { ptr::copy_nonoverlapping(source, copy, len) };
        REHOMED.fetch_add(1, Relaxed);
    }
    copy
}

/// Whether `PyAlloc` is this program's `#[global_allocator]`, handing Rust
/// its blocks unchanged: a `Box` made on a new thread (which holds no GIL, so
/// `PyAlloc` makes a private block) must be a private block of this copy of
/// pyalloc. A wrapping allocator that adds a header, or another allocator,
/// hands out something else. Probed on a new thread, and the answer cached;
/// "no" (not cached, probed again next time) when no thread can be started,
/// which only costs a copy.
pub fn is_global_allocator() -> bool {
    static ANSWER: KeptAnswer = KeptAnswer::new();
    ANSWER.get(|| {
        std::thread::Builder::new()
            .name("pyalloc-probe".into())
            .spawn(|| {
                let boxed = std::hint::black_box(Box::new([0u8; 64]));
                // SAFETY: the box's block is live: the global allocator made it.
                unsafe { private::is_own(boxed.as_ptr().cast_mut()) }
            })
            .ok()
            .and_then(|thread| thread.join().ok())
    })
}
