//! The private heap's backend with the `mimalloc` feature (the default):
//! mimalloc 2's ordinary API (its per-thread default heaps; any thread may
//! free any block), statically linked into each copy of pyalloc.
//! `PYALLOC_PRIVATE_HEAP=system` in the environment when the process starts
//! bypasses it for the system allocator, for tools that see only `malloc`
//! (valgrind, memray, heaptrack).
//!
//! Each copy reserves its arenas in 32 MiB steps rather than mimalloc's
//! 1 GiB: one copy per extension module would otherwise claim gigabytes of
//! address space, which fails under `ulimit -v`.
//!
//! In front of it, each thread keeps a cache of the blocks it freed
//! (`thread_cache.rs`; `private/mod.rs` asks it first and fills it).

use core::ffi::{c_int, c_long, c_void};
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

use libmimalloc_sys::{mi_free, mi_malloc, mi_realloc, mi_zalloc};

use crate::sys;

extern "C" {
    // In mimalloc's base API, not declared by libmimalloc-sys without its
    // `extended` feature (which would add a dependency).
    fn mi_usable_size(p: *const c_void) -> usize;
    fn mi_option_set(option: c_int, value: c_long);
}

/// `mi_option_arena_reserve` in mimalloc 2.x's `mi_option_t`; in KiB.
const MI_OPTION_ARENA_RESERVE: c_int = 23;
const ARENA_RESERVE_KIB: c_long = 32 << 10;

/// The system allocator replaces mimalloc (`PYALLOC_PRIVATE_HEAP=system`).
static BYPASSED: AtomicBool = AtomicBool::new(false);

/// Reads `PYALLOC_PRIVATE_HEAP` and sets mimalloc's options, before this
/// copy's first mimalloc allocation (`private::set_up`). A user's own
/// `MIMALLOC_ARENA_RESERVE` wins.
pub(super) fn configure() {
    match sys::env(c"PYALLOC_PRIVATE_HEAP") {
        None | Some(b"mimalloc") => {}
        Some(b"system") => BYPASSED.store(true, Relaxed),
        Some(_) => sys::warn_parts(&[
            "pyalloc: PYALLOC_PRIVATE_HEAP is neither 'mimalloc' nor 'system'; using mimalloc\n",
        ]),
    }
    if sys::env(c"MIMALLOC_ARENA_RESERVE").is_none() {
        // SAFETY: sets one option of this copy's mimalloc; no allocation of
        // this copy has happened yet, so the arena is not reserved yet.
        unsafe { mi_option_set(MI_OPTION_ARENA_RESERVE, ARENA_RESERVE_KIB) };
    }
}

/// Whether the system allocator replaces mimalloc in this process.
#[inline]
pub(super) fn bypassed() -> bool {
    BYPASSED.load(Relaxed)
}

/// A 16-aligned block of `total` (> 32) bytes, zero-filled when `zeroed`;
/// NULL on failure.
#[inline]
pub(super) fn allocate(total: usize, zeroed: bool) -> *mut u8 {
    // SAFETY: mimalloc accepts any size and returns NULL on failure; blocks
    // of 16 bytes or more are 16-aligned (MI_MAX_ALIGN_SIZE).
    unsafe {
        if zeroed {
            mi_zalloc(total).cast()
        } else {
            mi_malloc(total).cast()
        }
    }
}

/// # Safety
/// `start` is a live block from this backend; on success it is not used
/// afterwards.
#[inline]
pub(super) unsafe fn resize(start: *mut u8, total: usize) -> *mut u8 {
    // SAFETY: a live mimalloc block; on failure mimalloc leaves it as is.
    unsafe { mi_realloc(start.cast(), total).cast() }
}

/// The bytes a live block can hold.
///
/// # Safety
/// `block` is a live mimalloc block.
pub(super) unsafe fn usable_size(block: *mut u8) -> usize {
    // SAFETY: as the caller promises.
    unsafe { mi_usable_size(block.cast()) }
}

/// `mi_free`.
///
/// # Safety
/// `block` is a live mimalloc block, not used afterwards.
#[inline]
pub(super) unsafe fn free(block: *mut u8) {
    // SAFETY: as the caller promises.
    unsafe { mi_free(block.cast()) }
}
