//! The stress test's blocks: what a pool entry is, the byte pattern that
//! fills it, and the seeded choices of sizes.

use std::env;
use std::sync::OnceLock;

/// SplitMix64: small, seedable, good enough to pick operations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    /// Mostly small sizes, sometimes large, rarely up to 4 MiB (or
    /// `PYALLOC_STRESS_MAX_SIZE`, which the valgrind run lowers).
    pub fn size(&mut self, min: usize) -> usize {
        let size = match self.below(100) {
            0..=69 => self.below(257),
            70..=94 => self.below(64 << 10),
            _ => self.below(max_size()),
        };
        size.clamp(min, max_size().max(min))
    }
}

pub enum Kind {
    /// From `PyAlloc` with this alignment.
    Rust { align: usize },
    /// From `pyalloc_malloc`/`pyalloc_calloc`/`pyalloc_realloc`.
    CApi,
    /// From `PyMem_Malloc` (C's own), or handed to C by `into_pymem`.
    PyMem,
    /// A Rust `Vec<u8>` (possibly adopted from a PyMem block).
    Vec(Vec<u8>),
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Rust { align } => write!(f, "Rust {{ align: {align} }}"),
            Kind::CApi => f.write_str("CApi"),
            Kind::PyMem => f.write_str("PyMem"),
            Kind::Vec(bytes) => write!(f, "Vec {{ capacity: {} }}", bytes.capacity()),
        }
    }
}

#[derive(Debug)]
pub struct Block {
    pub kind: Kind,
    pub ptr: usize,
    pub len: usize,
    pub seed: u8,
}

// SAFETY: a Block owns its memory; every kind may be released on any thread.
unsafe impl Send for Block {}

pub fn byte(seed: u8, i: usize) -> u8 {
    seed.wrapping_add((i as u8).wrapping_mul(31))
        .wrapping_add((i >> 8) as u8)
}

pub fn fill(ptr: *mut u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: callers pass a live block of at least `len` bytes.
        unsafe { ptr.add(i).write(byte(seed, i)) };
    }
}

pub fn intact(ptr: *const u8, len: usize, seed: u8) -> bool {
    // SAFETY: callers pass a live block of at least `len` initialised bytes.
    (0..len).all(|i| unsafe { *ptr.add(i) } == byte(seed, i))
}

/// The largest size a block takes: 4 MiB, or `PYALLOC_STRESS_MAX_SIZE`
/// (which the valgrind run lowers).
fn max_size() -> usize {
    static MAX_SIZE: OnceLock<usize> = OnceLock::new();
    *MAX_SIZE.get_or_init(|| {
        env::var("PYALLOC_STRESS_MAX_SIZE")
            .map(|text| text.parse().expect("PYALLOC_STRESS_MAX_SIZE is a number"))
            .unwrap_or(4 << 20)
    })
}
