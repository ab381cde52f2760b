//! Private blocks above `LARGE` (1 MiB of user bytes) when mimalloc is the
//! backend: each is its own anonymous mapping, grown or shrunk with `mremap`
//! (no copy; on macOS and Windows, which have none, a new mapping and a
//! copy: `sys::remap`). mimalloc would keep a freed large block's pages
//! until its purge delay had passed and the thread called it again, so a
//! thread that went idle after a large block kept it resident.
//!
//! A freed mapping goes to a pool shared by every thread, at most
//! `POOL_BYTES` in `POOL_SLOTS` mappings, and is unmapped when the pool is
//! full: a thread that allocates and frees large blocks again and again
//! reuses its pages instead of faulting them in anew each time (20-35x
//! slower than glibc at 2-12 MiB on this machine), and what idle threads
//! keep is bounded for the whole process, not per thread. The pool costs
//! atomic operations, on large blocks only.
//!
//! ```text
//!   mapping: [ length (8) | 8 unused | backend block (what `mark` sees)... ]
//! ```
//!
//! The mapping is page-aligned, so the backend block starts 16 mod 32 and
//! the user pointer lands 32 bytes into it (`STARTS_32_BEFORE`).

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use crate::sys;

/// The bytes before the backend block: the mapping's length, and padding.
const HEADER: usize = 16;

/// Freed mappings kept for reuse, and their bytes (lengths) in all.
const POOL_SLOTS: usize = 4;
const POOL_BYTES: usize = 16 << 20;
static POOL: [AtomicPtr<u8>; POOL_SLOTS] = [const { AtomicPtr::new(ptr::null_mut()) }; POOL_SLOTS];
static POOLED: AtomicUsize = AtomicUsize::new(0);

/// The length recorded at the start of a mapping.
///
/// # Safety
/// `map` is the start of a live mapping made by `allocate` or `resize`.
unsafe fn length(map: *mut u8) -> usize {
    // SAFETY: as the caller promises; the first word is the length.
    unsafe { map.cast::<usize>().read() }
}

/// A pooled mapping of at least `len` bytes and at most twice that, taken
/// out of the pool.
fn take(len: usize) -> Option<*mut u8> {
    if POOLED.load(Relaxed) == 0 {
        return None;
    }
    for slot in &POOL {
        // Acquire: pairs with the Release that pooled it (its length word).
        let map = slot.swap(ptr::null_mut(), Acquire);
        if map.is_null() {
            continue;
        }
        // SAFETY: a pooled mapping is live and now ours alone.
        let have = unsafe { length(map) };
        if have >= len && have / 2 < len {
            POOLED.fetch_sub(have, Relaxed);
            return Some(map);
        }
        if slot
            .compare_exchange(ptr::null_mut(), map, Release, Relaxed)
            .is_err()
        {
            POOLED.fetch_sub(have, Relaxed);
            // SAFETY: ours, taken out of the pool, and no longer wanted.
            unsafe { sys::unmap(map, have) };
        }
    }
    None
}

/// A backend block of `total` bytes, 16-aligned, zero-filled when
/// `zeroed` (a fresh mapping; otherwise possibly a pooled one); NULL when
/// out of memory.
pub(super) fn allocate(total: usize, zeroed: bool) -> *mut u8 {
    let Some(len) = total.checked_add(HEADER) else {
        return ptr::null_mut();
    };
    if !zeroed {
        if let Some(map) = take(len) {
            // SAFETY: a live mapping of at least `len` bytes; its length word
            // stays what it is (the whole mapping).
            return unsafe { map.add(HEADER) };
        }
    }
    // A new private mapping (Linux, macOS: `mmap`; Windows: `VirtualAlloc`),
    // page-aligned at least.
    let map = sys::map(len);
    if map.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: the mapping is ours, page-aligned and at least `len` bytes.
    unsafe {
        map.cast::<usize>().write(len);
        map.cast::<u8>().add(HEADER)
    }
}

/// # Safety
/// `start` is a live backend block from this module, not used afterwards.
pub(super) unsafe fn release(start: *mut u8) {
    // SAFETY: the block's mapping starts HEADER bytes before it, with its
    // length in its first word; nothing else lives in it.
    let (map, len) = unsafe {
        let map = start.sub(HEADER);
        (map, length(map))
    };
    if len <= POOL_BYTES {
        // Room first: the mappings pooled earlier go (the newest is the
        // likeliest to be wanted again).
        for slot in &POOL {
            if POOLED.load(Relaxed) + len <= POOL_BYTES {
                break;
            }
            let old = slot.swap(ptr::null_mut(), Acquire);
            if !old.is_null() {
                // SAFETY: a pooled mapping, now ours alone, no longer wanted.
                unsafe {
                    let old_len = length(old);
                    POOLED.fetch_sub(old_len, Relaxed);
                    sys::unmap(old, old_len);
                }
            }
        }
    }
    if POOLED.fetch_add(len, Relaxed) + len <= POOL_BYTES {
        for slot in &POOL {
            // Release: the length word is visible to whoever takes it.
            if slot
                .compare_exchange(ptr::null_mut(), map, Release, Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
    POOLED.fetch_sub(len, Relaxed);
    // SAFETY: our mapping, given up by the caller, of `len` bytes.
    unsafe { sys::unmap(map, len) };
}

/// Resizes the block to `total` bytes, keeping its contents; NULL on
/// failure, leaving it as it was.
///
/// # Safety
/// `start` is a live backend block from this module; on success it is not
/// used afterwards.
pub(super) unsafe fn resize(start: *mut u8, total: usize) -> *mut u8 {
    let Some(len) = total.checked_add(HEADER) else {
        return ptr::null_mut();
    };
    // SAFETY: as in `release`; `remap` moves the whole mapping (Linux:
    // `mremap`; elsewhere a new one and a copy) or fails and leaves it as it
    // was.
    unsafe {
        let map = start.sub(HEADER);
        let moved = sys::remap(map, map.cast::<usize>().read(), len);
        if moved.is_null() {
            return ptr::null_mut();
        }
        moved.cast::<usize>().write(len);
        moved.add(HEADER)
    }
}
