//! The hot function of the `utf8scan` extension: where a byte string stops
//! being UTF-8. Its result is built in Rust and handed to C as a block that C
//! owns and releases with `PyMem_Free`; no copy is made.

#![deny(unsafe_op_in_unsafe_fn)]

use core::ptr;

/// Every Rust allocation of the extension goes to CPython's PyMem heap when
/// the GIL is held, so tracemalloc sees it and C may `PyMem_Free` it.
#[global_allocator]
static GLOBAL: pyalloc::PyAlloc = pyalloc::PyAlloc;

/// The offset of the first byte of every invalid UTF-8 sequence in `bytes`
/// (the "maximal subpart" rule, as Python's own decoder reports them).
pub fn invalid_offsets(bytes: &[u8]) -> Vec<u64> {
    let mut offsets = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        match core::str::from_utf8(&bytes[start..]) {
            Ok(_) => break,
            Err(error) => {
                let bad = start + error.valid_up_to();
                offsets.push(bad as u64);
                // A truncated sequence at the end has no error length.
                start = bad + error.error_len().unwrap_or(bytes.len() - bad);
            }
        }
    }
    offsets
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
    let offsets = invalid_offsets(bytes);
    let found = offsets.len();
    // The block C receives: the offsets' bytes, built in one Rust buffer.
    let mut as_bytes = Vec::with_capacity(found * 8);
    for offset in offsets {
        as_bytes.extend_from_slice(&offset.to_ne_bytes());
    }
    // SAFETY: the caller gives a writable `count`.
    unsafe { count.write(0) };
    match pyalloc::into_pymem(as_bytes) {
        Ok(block) => {
            // SAFETY: as above.
            unsafe { count.write(found) };
            block.into_raw().0.cast()
        }
        // No GIL (a broken promise) or no memory: nothing is handed over.
        Err(_) => ptr::null_mut(),
    }
}
