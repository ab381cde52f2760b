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
//! In front of it, each thread keeps one *spare*: the last block it freed,
//! reused by its next allocation of a size it fits. mimalloc 2 retires a page
//! that becomes empty, and gives a large page back to its segment, at a cost
//! of 5 ns to 1 us per block (a segment's metadata is rebuilt each time); a
//! thread that allocates and frees one buffer at a time would pay it every
//! time. The spare is freed when its thread exits.

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

/// The most memory a spare may hold on to.
const SPARE_MAX: usize = 16 << 20;

thread_local! {
    /// This thread's spare block, or NULL.
    static SPARE: Cell<*mut u8> = const { Cell::new(ptr::null_mut()) };
    /// What the spare holds: at least this many bytes. `GONE` once the
    /// thread's locals are being torn down: nothing is kept from then on.
    static SPARE_CAPACITY: Cell<usize> = const { Cell::new(0) };
    /// Frees the spare when the thread exits; touched once, when the thread
    /// first keeps one (a destructor is registered on first use).
    static SPARE_GUARD: SpareGuard = const { SpareGuard };
}

const GONE: usize = usize::MAX;

struct SpareGuard;

impl Drop for SpareGuard {
    fn drop(&mut self) {
        SPARE_CAPACITY.with(|capacity| capacity.set(GONE));
        let block = SPARE.with(|spare| spare.replace(ptr::null_mut()));
        if !block.is_null() {
            // SAFETY: the spare is a live mimalloc block owned by the slot.
            unsafe { mi_free(block.cast()) };
        }
    }
}

/// Whether a block of `capacity` bytes serves a request of `total`: large
/// enough, and not more than twice as large.
#[inline]
fn fits(capacity: usize, total: usize) -> bool {
    capacity >= total && capacity / 2 <= total
}

/// A 16-aligned block of `total` (> 32) bytes, zero-filled when `zeroed`;
/// NULL on failure.
#[inline]
pub(super) fn allocate(total: usize, zeroed: bool) -> *mut u8 {
    let capacity = SPARE_CAPACITY.with(Cell::get);
    if !zeroed && capacity != GONE && fits(capacity, total) {
        SPARE_CAPACITY.with(|capacity| capacity.set(0));
        return SPARE.with(|spare| spare.replace(ptr::null_mut()));
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

/// # Safety
/// `start` is a live block from this backend; on success it is not used
/// afterwards.
#[inline]
pub(super) unsafe fn resize(start: *mut u8, total: usize) -> *mut u8 {
    // SAFETY: a live mimalloc block; on failure mimalloc leaves it as is.
    unsafe { mi_realloc(start.cast(), total).cast() }
}

/// Frees a block, or keeps it as this thread's spare, freeing the previous
/// one: when the thread has none, or when the one it has would not serve a
/// request of this block's size (the program has moved on to other sizes).
/// `total` is a lower bound of its size when known; `large` says whether it
/// is above the private heap's `LARGE` (worth asking mimalloc its size).
///
/// # Safety
/// `start` is a live block from this backend, not used afterwards.
#[inline]
pub(super) unsafe fn release(start: *mut u8, total: Option<usize>, large: bool) {
    let current = SPARE_CAPACITY.with(Cell::get);
    let keep = current != GONE && total.map_or(current == 0 || large, |total| !fits(current, total));
    if keep {
        let capacity = match total {
            Some(total) => total,
            // SAFETY: a live mimalloc block.
            None => unsafe { mi_usable_size(start.cast()) },
        };
        if capacity <= SPARE_MAX && SPARE_GUARD.try_with(|_| ()).is_ok() {
            let evicted = SPARE.with(|spare| spare.replace(start));
            SPARE_CAPACITY.with(|slot| slot.set(capacity));
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
