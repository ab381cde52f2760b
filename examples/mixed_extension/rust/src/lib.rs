//! The hot function of the `utf8scan` extension: where a byte string stops
//! being UTF-8. Its result is built in Rust and handed to C as a block that C
//! owns and releases with `PyMem_Free`; no copy is made.
//!
//! Every Rust allocation of the extension goes to CPython's PyMem heap when
//! the GIL is held, so tracemalloc sees it and C may `PyMem_Free` it:
//! pyalloc.setuptools builds this crate with pyalloc's `global-allocator`
//! feature, which makes `pyalloc::PyAlloc` its global allocator.

#![deny(unsafe_op_in_unsafe_fn)]

use core::ptr;

/// Calls `found` with the offset of the first byte of every invalid UTF-8
/// sequence in `bytes` (the "maximal subpart" rule, as Python's own decoder
/// reports them).
pub fn for_each_invalid(bytes: &[u8], mut found: impl FnMut(usize)) {
    let mut start = 0;
    while start < bytes.len() {
        match core::str::from_utf8(&bytes[start..]) {
            Ok(_) => break,
            Err(error) => {
                let bad = start + error.valid_up_to();
                found(bad);
                // A truncated sequence at the end has no error length.
                start = bad + error.error_len().unwrap_or(bytes.len() - bad);
            }
        }
    }
}

/// Scans `data[..len]` and returns the offsets of its invalid UTF-8
/// sequences as a block of `*count` native-endian `uint64_t`, which the
/// caller owns and releases with `PyMem_Free` (also when `*count` is 0).
/// NULL when memory runs out (`*count` is then 0).
///
/// # Safety
/// The calling thread holds the GIL (the block comes from `PyMem_Malloc`);
/// `data` points to `len` readable bytes (or is NULL with `len == 0`);
/// `count` points to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn utf8scan_invalid_offsets(
    data: *const u8,
    len: usize,
    count: *mut usize,
) -> *mut u64 {
    let bytes = if len == 0 {
        &[][..]
    } else {
        // SAFETY: the caller promises `len` readable bytes at `data`.
        unsafe { core::slice::from_raw_parts(data, len) }
    };
    // The block C receives: the offsets' bytes, built in one Rust buffer.
    let mut as_bytes = Vec::new();
    let mut found = 0;
    for_each_invalid(bytes, |offset| {
        as_bytes.extend_from_slice(&(offset as u64).to_ne_bytes());
        found += 1;
    });
    // SAFETY: the caller gives a writable `count`.
    unsafe { count.write(0) };
    match pyalloc::into_pymem(as_bytes) {
        Ok(block) => {
            // SAFETY: as above.
            unsafe { count.write(found) };
            let block = block.into_raw().0;
            // PyMem blocks are at least 8-aligned (pyalloc checks it), so C
            // may read them as uint64_t.
            debug_assert_eq!(block as usize % core::mem::align_of::<u64>(), 0);
            block.cast()
        }
        // No GIL (a broken promise) or no memory: nothing is handed over.
        Err(_) => ptr::null_mut(),
    }
}
