//! Private blocks above `LARGE` (1 MiB of user bytes) when mimalloc is the
//! backend: each is its own anonymous mapping, unmapped when it is freed, and
//! grown or shrunk with `mremap` (no copy). mimalloc would keep a freed large
//! block's pages until its purge delay had passed and the thread called it
//! again, so a thread that went idle after a large block kept it resident.
//!
//! ```text
//!   mapping: [ length (8) | 8 unused | backend block (what `mark` sees)... ]
//! ```
//!
//! The mapping is page-aligned, so the backend block starts 16 mod 32 and
//! the user pointer lands 32 bytes into it (`STARTS_32_BEFORE`).

use core::ffi::{c_int, c_long, c_void};
use core::ptr;

extern "C" {
    fn mmap(
        addr: *mut c_void,
        len: usize,
        prot: c_int,
        flags: c_int,
        fd: c_int,
        offset: c_long,
    ) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
    fn mremap(old: *mut c_void, old_len: usize, new_len: usize, flags: c_int, ...) -> *mut c_void;
}

const PROT_READ_WRITE: c_int = 0x1 | 0x2;
const MAP_PRIVATE_ANONYMOUS: c_int = 0x02 | 0x20;
const MREMAP_MAYMOVE: c_int = 1;
const MAP_FAILED: *mut c_void = !0usize as *mut c_void;
/// The bytes before the backend block: the mapping's length, and padding.
const HEADER: usize = 16;

/// A fresh, zero-filled backend block of `total` bytes, 16-aligned; NULL
/// when out of memory.
pub(super) fn allocate(total: usize) -> *mut u8 {
    let Some(len) = total.checked_add(HEADER) else {
        return ptr::null_mut();
    };
    // SAFETY: a new private anonymous mapping; failure is MAP_FAILED.
    let map = unsafe {
        mmap(
            ptr::null_mut(),
            len,
            PROT_READ_WRITE,
            MAP_PRIVATE_ANONYMOUS,
            -1,
            0,
        )
    };
    if map == MAP_FAILED {
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
    unsafe {
        let map = start.sub(HEADER);
        munmap(map.cast(), map.cast::<usize>().read());
    }
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
    // SAFETY: as in `release`; mremap moves the whole mapping (or fails and
    // leaves it as it was).
    unsafe {
        let map = start.sub(HEADER);
        let moved = mremap(map.cast(), map.cast::<usize>().read(), len, MREMAP_MAYMOVE);
        if moved == MAP_FAILED {
            return ptr::null_mut();
        }
        moved.cast::<usize>().write(len);
        moved.cast::<u8>().add(HEADER)
    }
}
