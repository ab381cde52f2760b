//! Example exports that exercise the exchange between Rust and C; the tests
//! and the Python extension use them, and users can copy their patterns.

use core::ptr;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use crate::ownership::{into_pymem, vec_from_pymem};
use crate::panic::boundary;

/// Most threads `pyalloc_demo_parallel` will start.
pub const DEMO_MAX_THREADS: usize = 64;

/// Builds the lowercase hexadecimal text of `data[0..len]` in a Rust `Vec`
/// and hands it over: C owns the result and releases it with `PyMem_Free`
/// (GIL held) or `pyalloc_free`. The text is not NUL-terminated; its length
/// (`2 * len`) is written to `*out_len`.
///
/// Needs the main interpreter's GIL (the result must be a PyMem block).
/// `data == NULL` with `len == 0` gives an empty, non-NULL result. Returns
/// NULL and leaves `*out_len` unwritten when `out_len` is NULL, when `data`
/// is NULL and `len > 0`, when the GIL is not held, or when out of memory.
///
/// # Safety
/// `data` is NULL or readable for `len` bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pyalloc_demo_hex(data: *const u8, len: usize, out_len: *mut usize) -> *mut u8 {
    boundary(ptr::null_mut(), || {
        if out_len.is_null() || (data.is_null() && len > 0) {
            return ptr::null_mut();
        }
        let input: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: non-NULL and readable for `len` bytes (caller's promise).
            unsafe { core::slice::from_raw_parts(data, len) }
        };
        let Some(text) = hex(input) else {
            return ptr::null_mut();
        };
        match into_pymem(text) {
            Ok(block) => {
                let (block, text_len) = block.into_raw();
                // SAFETY: `out_len` is non-NULL and writable (checked above).
                unsafe { out_len.write(text_len) };
                block
            }
            Err(_) => ptr::null_mut(),
        }
    })
}

/// The lowercase hex text of `input`; None when out of memory.
fn hex(input: &[u8]) -> Option<Vec<u8>> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = Vec::new();
    text.try_reserve_exact(input.len().checked_mul(2)?).ok()?;
    for byte in input {
        text.push(DIGITS[usize::from(byte >> 4)]);
        text.push(DIGITS[usize::from(byte & 0x0f)]);
    }
    Some(text)
}

/// Takes ownership of `buf`, a block of `len` bytes that C allocated with
/// `PyMem_Malloc`, returns the sum of its bytes, and drops it in Rust. Works
/// on any thread: without the GIL the block is queued and freed later by a
/// GIL holder (or `pyalloc_collect`). `buf == NULL` returns 0.
///
/// # Safety
/// `buf` is NULL or a live `PyMem_Malloc` block of the main interpreter with
/// at least `len` initialised bytes; C must not use or free it afterwards.
#[no_mangle]
pub unsafe extern "C" fn pyalloc_demo_consume(buf: *mut u8, len: usize) -> u64 {
    boundary(0, || {
        // SAFETY: as the caller promises.
        let owned = unsafe { vec_from_pymem(buf, len) };
        owned.iter().map(|&byte| u64::from(byte)).sum()
    })
}

/// Starts `threads` Rust threads that each run `ops` rounds of allocating,
/// growing, sharing, sending to a neighbour thread and dropping `Vec`s,
/// `String`s and boxes of many sizes and alignments (1 to 4096); joins them
/// and returns a checksum of everything they built. The checksum depends only
/// on `threads` and `ops`, never on timing, and is never 0.
///
/// Callable with or without the GIL held; the workers never call into
/// Python. Returns 0 when `threads` is 0 or above 64, when a thread cannot be
/// started, or when a worker finds a corrupted buffer.
#[no_mangle]
pub extern "C" fn pyalloc_demo_parallel(threads: usize, ops: usize) -> u64 {
    boundary(0, || parallel(threads, ops).unwrap_or(0))
}

/// The bytes a (thread, round) pair writes; receivers recompute them.
fn pattern(thread: usize, round: usize, len: usize) -> impl Iterator<Item = u8> {
    let seed = (thread as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ round as u64;
    (0..len).map(move |i| (seed.wrapping_add(i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8)
}

/// FNV-1a over bytes; the building block of the checksum.
fn fnv(mut hash: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    for byte in bytes {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[repr(align(64))]
#[derive(Clone, Copy)]
struct CacheLine([u8; 64]);

#[repr(align(4096))]
struct Page([u8; 4096]);

/// What a worker sends its neighbour: a buffer to check and drop over there.
struct Parcel {
    from: usize,
    round: usize,
    bytes: Vec<u8>,
}

fn parallel(threads: usize, ops: usize) -> Option<u64> {
    if threads == 0 || threads > DEMO_MAX_THREADS {
        return None;
    }
    // Built on the calling thread (pymem when it holds the GIL), read by every
    // worker, and dropped by whichever worker finishes last: a pymem block
    // freed without the GIL, when the caller holds it.
    let shared: Arc<Vec<u8>> = Arc::new(pattern(usize::MAX, 0, 4096).collect());
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..threads).map(|_| mpsc::channel::<Parcel>()).unzip();
    let mut handles = Vec::with_capacity(threads);
    for (index, inbox) in receivers.into_iter().enumerate() {
        let outbox = senders[(index + 1) % threads].clone();
        let shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("pyalloc-demo-{index}"))
            .spawn(move || worker(index, ops, &shared, outbox, inbox));
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(_) => {
                drop(senders);
                for handle in handles {
                    let _ = handle.join();
                }
                return None;
            }
        }
    }
    drop(senders);
    drop(shared);
    let mut checksum = 0u64;
    let mut corrupt = false;
    for handle in handles {
        match handle.join() {
            Ok(Some(part)) => checksum = checksum.wrapping_add(part),
            _ => corrupt = true,
        }
    }
    if corrupt {
        return None;
    }
    Some(if checksum == 0 { 1 } else { checksum })
}

/// One worker: returns its checksum, or None when a received buffer or the
/// shared one is not what its sender wrote.
fn worker(
    index: usize,
    ops: usize,
    shared: &Arc<Vec<u8>>,
    outbox: mpsc::Sender<Parcel>,
    inbox: mpsc::Receiver<Parcel>,
) -> Option<u64> {
    const SIZES: [usize; 9] = [1, 7, 16, 31, 64, 200, 512, 4000, 70_000];
    // `hash` chains this worker's own work in a fixed order; parcels arrive
    // whenever they do, so their contributions are summed apart.
    let mut hash = 0xcbf2_9ce4_8422_2325_u64 ^ index as u64;
    let mut received = 0u64;
    for round in 0..ops {
        let size = SIZES[(index + round * 7) % SIZES.len()];
        match round % 6 {
            0 => {
                // Grown by pushes: the realloc path.
                let mut bytes = Vec::new();
                bytes.extend(pattern(index, round, size));
                hash = fnv(hash, bytes.iter().copied());
                let _ = outbox.send(Parcel {
                    from: index,
                    round,
                    bytes,
                });
            }
            1 => {
                let mut text = String::new();
                for step in 0..size.min(512) {
                    text.push_str(if step % 2 == 0 { "ab" } else { "c" });
                }
                text.shrink_to_fit();
                hash = fnv(hash, text.bytes());
            }
            2 => {
                let words: Vec<u64> = (0..size as u64)
                    .map(|i| i.wrapping_mul(round as u64 + 1))
                    .collect();
                hash = fnv(hash, words.iter().flat_map(|w| w.to_le_bytes()));
            }
            3 => {
                let mut wide: Vec<u128> = Vec::with_capacity(4);
                wide.extend((0..(size % 97) as u128).map(|i| i << 64 | index as u128));
                wide.shrink_to(1);
                hash = fnv(hash, wide.iter().flat_map(|w| w.to_le_bytes()));
            }
            4 => {
                let mut lines = vec![CacheLine([round as u8; 64]); 1 + size % 5];
                lines.resize(3 + size % 11, CacheLine([index as u8; 64]));
                if lines.as_ptr() as usize % 64 != 0 {
                    return None;
                }
                hash = fnv(hash, lines.iter().flat_map(|line| line.0));
            }
            _ => {
                let page = Box::new(Page([(round % 251) as u8; 4096]));
                if &*page as *const Page as usize % 4096 != 0 {
                    return None;
                }
                hash = fnv(hash, page.0[..8].iter().copied());
                hash = fnv(hash, shared[round % shared.len()..][..1].iter().copied());
            }
        }
        // Take what the neighbour sent so far: checked here, dropped here.
        while let Ok(parcel) = inbox.try_recv() {
            received = received.wrapping_add(check(&parcel)?);
        }
    }
    drop(outbox);
    // Every sender is gone once all workers finish their rounds.
    while let Ok(parcel) = inbox.recv() {
        received = received.wrapping_add(check(&parcel)?);
    }
    if shared.iter().copied().ne(pattern(usize::MAX, 0, 4096)) {
        return None;
    }
    Some(hash.wrapping_add(received))
}

/// A parcel's contribution to the checksum (independent of when it arrived),
/// or None when its bytes are not what the sender wrote.
fn check(parcel: &Parcel) -> Option<u64> {
    let expected = pattern(parcel.from, parcel.round, parcel.bytes.len());
    if parcel.bytes.iter().copied().ne(expected) {
        return None;
    }
    Some(fnv(0x811c_9dc5, parcel.bytes.iter().copied()))
}
