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
//! In front of it, each thread keeps one *spare*: a block above `SPARE_MIN`
//! bytes that it freed, reused by its next allocation that fits.
//! mimalloc 2 retires a page that becomes empty, and gives a large page back
//! to its segment, at a cost of 20 ns to 1 us per block (a segment's metadata
//! is rebuilt each time); a thread that allocates and frees one buffer at a
//! time would pay it every time. The spare is freed when its thread exits.

use core::cell::Cell;
use core::ffi::{c_int, c_long, c_void};
use core::ptr;
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

/// Blocks of more than this many bytes may become the spare: the private
/// heap's `LARGE`, which is what its owner word's size flag tells.
const SPARE_MIN: usize = super::LARGE;
/// Nor of more than this: the most memory a thread holds on to.
const SPARE_MAX: usize = 16 << 20;

/// A thread's spare block and its usable size (0: none).
struct Spare {
    block: Cell<*mut u8>,
    usable: Cell<usize>,
}

impl Drop for Spare {
    fn drop(&mut self) {
        let block = self.block.replace(ptr::null_mut());
        if !block.is_null() {
            // SAFETY: the spare is a live mimalloc block owned by this slot.
            unsafe { mi_free(block.cast()) };
        }
    }
}

thread_local! {
    static SPARE: Spare = const {
        Spare {
            block: Cell::new(ptr::null_mut()),
            usable: Cell::new(0),
        }
    };
}

/// A 16-aligned block of `total` (> 32) bytes, zero-filled when `zeroed`;
/// NULL on failure.
#[inline]
pub(super) fn allocate(total: usize, zeroed: bool) -> *mut u8 {
    if !zeroed && total > SPARE_MIN {
        if let Some(spare) = take_spare(total) {
            return spare;
        }
    }
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

/// The spare, if it holds at least `total` bytes and not more than twice
/// that; it leaves the slot.
fn take_spare(total: usize) -> Option<*mut u8> {
    SPARE
        .try_with(|spare| {
            if !fits(spare.usable.get(), total) {
                return None;
            }
            spare.usable.set(0);
            Some(spare.block.replace(ptr::null_mut()))
        })
        .ok()
        .flatten()
}

/// # Safety
/// `start` is a live block from this backend; on success it is not used
/// afterwards.
#[inline]
pub(super) unsafe fn resize(start: *mut u8, total: usize) -> *mut u8 {
    // SAFETY: a live mimalloc block; on failure mimalloc leaves it as is.
    unsafe { mi_realloc(start.cast(), total).cast() }
}

/// Frees a block, or keeps it as this thread's spare: when the thread has
/// none, or when the one it has would not serve a request of this block's
/// size (the program has moved on to other sizes). `total`, when known, is a
/// lower bound of its size (`LARGE` or less says it is no candidate).
///
/// # Safety
/// `start` is a live block from this backend, not used afterwards.
#[inline]
pub(super) unsafe fn release(start: *mut u8, total: Option<usize>) {
    if total.map_or(true, |total| total > SPARE_MIN) {
        if let Some(evicted) = keep_as_spare(start, total) {
            if !evicted.is_null() {
                // SAFETY: the previous spare, a live mimalloc block that the
                // slot gave up.
                unsafe { mi_free(evicted.cast()) };
            }
            return;
        }
    }
    // SAFETY: a live mimalloc block, given up by the caller.
    unsafe { mi_free(start.cast()) }
}

/// Makes `block` this thread's spare, as `release` says; returns the spare it
/// replaces (or NULL), or None when `block` is not kept: too small or too
/// large, the current spare fits its size, or the thread's slot is gone
/// (late in its exit).
fn keep_as_spare(block: *mut u8, total: Option<usize>) -> Option<*mut u8> {
    SPARE
        .try_with(|spare| {
            let current = spare.block.get();
            if !current.is_null() && total.is_some_and(|total| fits(spare.usable.get(), total)) {
                return None;
            }
            // SAFETY: a live mimalloc block.
            let usable = unsafe { mi_usable_size(block.cast()) };
            if usable <= SPARE_MIN || usable > SPARE_MAX {
                return None;
            }
            spare.block.set(block);
            spare.usable.set(usable);
            Some(current)
        })
        .ok()
        .flatten()
}

/// Whether a spare of `usable` bytes serves a request of `total`: large
/// enough, and not more than twice as large.
fn fits(usable: usize, total: usize) -> bool {
    usable >= total && usable / 2 <= total
}
