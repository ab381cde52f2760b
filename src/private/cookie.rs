//! The per-process cookie that marks private blocks.
//!
//! Every copy of pyalloc in a process (one per extension module that links
//! it) must compute the same value, so that a private block made by one copy
//! is recognised by another; and the value must change with every process
//! image, so that no data can be made to look like a private block by chance
//! or by design without reading the heap. The bytes come from
//! `sys::process_random_bytes`, which meets both on each OS:
//! - Linux: the kernel's `AT_RANDOM` bytes, the same for the whole process
//!   (and a forked child, which inherits its parent's blocks), fresh at every
//!   exec;
//! - macOS: the first word of libSystem's stack canary (one object per
//!   process, set at exec from the kernel's entropy, inherited by a fork);
//! - Windows: 16 bytes from `BCryptGenRandom` that the first copy publishes
//!   in a per-process named section, which later copies read (no fork there).
//!
//! The C library also uses those bytes (glibc: the stack protector's canary
//! and the pointer guard; macOS: they are the canary), and the cookie is
//! visible in the heap next to every private block, so it is a one-way
//! function of them: SipHash-2-4 with pyalloc's own key.
//! Part of the cross-copy ABI: copies of different pyalloc releases must
//! derive the same cookie.

use crate::sys;

/// SipHash key: "pyalloc-cookie-1", as two little-endian words.
const KEY: (u64, u64) = (u64::from_le_bytes(*b"pyalloc-"), u64::from_le_bytes(*b"cookie-1"));

/// The cookie of this process; never 0. The same on every call.
pub(super) fn derive() -> usize {
    let Some(random) = sys::process_random_bytes() else {
        sys::fatal(
            "the process's random bytes (sys::process_random_bytes)",
            "are missing: private blocks cannot be marked",
        );
    };
    match siphash24(KEY, &random) as usize {
        0 => 1,
        cookie => cookie,
    }
}

/// SipHash-2-4 of a 16-byte message (Aumasson and Bernstein, 2012).
fn siphash24(key: (u64, u64), message: &[u8; 16]) -> u64 {
    let mut v = [
        key.0 ^ 0x736f_6d65_7073_6575,
        key.1 ^ 0x646f_7261_6e64_6f6d,
        key.0 ^ 0x6c79_6765_6e65_7261,
        key.1 ^ 0x7465_6462_7974_6573,
    ];
    let round = |v: &mut [u64; 4]| {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    };
    let words = [
        u64::from_le_bytes(message[..8].try_into().expect("8 bytes")),
        u64::from_le_bytes(message[8..].try_into().expect("8 bytes")),
        // The final block: the message length (16) in the top byte.
        16u64 << 56,
    ];
    for word in words {
        v[3] ^= word;
        round(&mut v);
        round(&mut v);
        v[0] ^= word;
    }
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::siphash24;

    /// The reference implementation's test vector for a 16-byte message
    /// (bytes 0..15) under key 00 01 .. 0f.
    #[test]
    fn siphash24_matches_the_reference_vector() {
        let key = (
            u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]),
            u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]),
        );
        let message: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert_eq!(
            siphash24(key, &message).to_le_bytes(),
            [0xdb, 0x9b, 0xc2, 0x57, 0x7f, 0xcc, 0x2a, 0x3f]
        );
    }
}
