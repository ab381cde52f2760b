//! Which backend makes a private block, chosen in one place: mimalloc with
//! each thread's cache in front (`mimalloc.rs`, `thread_cache.rs`; the
//! `mimalloc` feature, the default) for blocks up to `LARGE`, a mapping of
//! its own above that (`mapped.rs`), and the system allocator (`system.rs`)
//! without the feature or with `PYALLOC_PRIVATE_HEAP=system`. A block's
//! owner word records its backend, so each block goes back to the one that
//! made it.

use super::{mapped, system};
#[cfg(feature = "mimalloc")]
use super::{mimalloc, thread_cache};
use crate::sys;

/// The bytes a backend block holds beyond the user's: the two words of the
/// mark and up to 16 bytes to reach 16 mod 32 (`private/mod.rs`).
pub(super) const SLACK: usize = 32;
/// With mimalloc as the backend, blocks above this (1 MiB of user bytes)
/// are mappings of their own, never cached: unmapped when freed.
#[cfg(feature = "mimalloc")]
pub(super) const LARGE: usize = (1 << 20) + SLACK;
/// The owner-word flags that name the backend (mimalloc: neither).
const SYSTEM_BLOCK: usize = 2;
const MAPPED_BLOCK: usize = 4;
const BACKENDS: usize = SYSTEM_BLOCK | MAPPED_BLOCK;

/// A backend of the private heap.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Backend {
    /// mimalloc behind the thread's cache; owner-word flag 0.
    #[cfg(feature = "mimalloc")]
    Mimalloc,
    /// A mapping of its own; `MAPPED_BLOCK`.
    Mapped,
    /// The system allocator; `SYSTEM_BLOCK`.
    System,
}

/// Sets the backends up before this copy's first private block: reads
/// `PYALLOC_PRIVATE_HEAP` and mimalloc's options.
pub(super) fn configure() {
    #[cfg(feature = "mimalloc")]
    mimalloc::configure();
}

impl Backend {
    /// The backend for a new block of `total` bytes.
    #[inline]
    pub(super) fn for_new(total: usize) -> Backend {
        #[cfg(feature = "mimalloc")]
        if !mimalloc::bypassed() {
            return if total > LARGE {
                Backend::Mapped
            } else {
                Backend::Mimalloc
            };
        }
        let _ = total;
        Backend::System
    }

    /// The backend a block's owner word names. Only a corrupted mark names
    /// one this build does not have (this copy made the block).
    /// mimalloc's blocks are told apart by one compare inline, the others
    /// out of line, so that the free path holds no jump table.
    #[inline(always)]
    pub(super) fn of(owner_word: usize) -> Backend {
        let flags = owner_word & BACKENDS;
        #[cfg(feature = "mimalloc")]
        if flags == 0 {
            return Backend::Mimalloc;
        }
        Backend::other_of(flags)
    }

    #[cfg_attr(feature = "mimalloc", cold, inline(never))]
    fn other_of(flags: usize) -> Backend {
        match flags {
            SYSTEM_BLOCK => Backend::System,
            MAPPED_BLOCK => Backend::Mapped,
            _ => corrupted_mark(),
        }
    }

    /// The owner-word flag that names this backend.
    #[inline]
    pub(super) fn flag(self) -> usize {
        match self {
            #[cfg(feature = "mimalloc")]
            Backend::Mimalloc => 0,
            Backend::Mapped => MAPPED_BLOCK,
            Backend::System => SYSTEM_BLOCK,
        }
    }

    /// A new 16-aligned block of `total` (> 32) bytes, zero-filled when
    /// `zeroed`; NULL on failure. (`private::allocate` asks the thread's
    /// cache first.)
    #[inline]
    pub(super) fn allocate(self, total: usize, zeroed: bool) -> *mut u8 {
        match self {
            #[cfg(feature = "mimalloc")]
            Backend::Mimalloc => mimalloc::allocate(total, zeroed),
            Backend::Mapped => mapped::allocate(total, zeroed),
            Backend::System => system::allocate(total, zeroed),
        }
    }

    /// Resizes a block to `total` bytes: the new block, or NULL leaving the
    /// old one valid.
    ///
    /// # Safety
    /// `start` is a live block of this backend; on success it is not used
    /// afterwards.
    #[inline]
    pub(super) unsafe fn resize(self, start: *mut u8, total: usize) -> *mut u8 {
        // SAFETY: as the caller promises.
        unsafe {
            match self {
                #[cfg(feature = "mimalloc")]
                Backend::Mimalloc => mimalloc::resize(start, total),
                Backend::Mapped => mapped::resize(start, total),
                Backend::System => system::resize(start, total),
            }
        }
    }

    /// The bytes a live mimalloc block can hold.
    ///
    /// # Safety
    /// `start` is a live block of `Backend::Mimalloc`.
    #[cfg(feature = "mimalloc")]
    pub(super) unsafe fn usable_size(self, start: *mut u8) -> usize {
        // SAFETY: as the caller promises.
        unsafe { mimalloc::usable_size(start) }
    }

    /// Frees a block (a mimalloc block into the thread's cache when it has
    /// room). `total`, when known, is a lower bound of its size. mimalloc's
    /// path is inline, the others a call.
    ///
    /// # Safety
    /// `start` is a live block of this backend, not used afterwards.
    #[inline]
    pub(super) unsafe fn release(self, start: *mut u8, total: Option<usize>) {
        #[cfg(feature = "mimalloc")]
        if self == Backend::Mimalloc {
            let capacity = match total {
                Some(total) => total,
                // SAFETY: a live mimalloc block (the caller's promise).
                None => unsafe { mimalloc::usable_size(start) },
            };
            // SAFETY: a live block of at least `capacity` (> 32) bytes,
            // given up; freed here when the cache does not keep it (it keeps
            // none above `LARGE`, as no allocation takes one).
            unsafe {
                if capacity > LARGE || !thread_cache::keep(start, capacity) {
                    mimalloc::free(start);
                }
            }
            return;
        }
        // SAFETY: as the caller promises.
        unsafe { self.release_elsewhere(start, total) }
    }

    /// # Safety
    /// As `release`, for a block not of mimalloc.
    #[cfg_attr(feature = "mimalloc", cold, inline(never))]
    unsafe fn release_elsewhere(self, start: *mut u8, total: Option<usize>) {
        match self {
            // SAFETY: as the caller promises.
            #[cfg(feature = "mimalloc")]
            Backend::Mimalloc => unsafe { mimalloc::free(start) },
            // SAFETY: as the caller promises.
            Backend::Mapped => unsafe { mapped::release(start) },
            // SAFETY: as the caller promises.
            Backend::System => unsafe { system::release(start, total) },
        }
    }
}

#[cold]
fn corrupted_mark() -> ! {
    sys::fatal(
        "the private heap",
        "found a block of a backend this build does not have",
    )
}
