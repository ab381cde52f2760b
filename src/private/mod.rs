//! The private heap: blocks made where PyMem may not be used (GIL released,
//! Rust or C worker threads, no interpreter yet or any more,
//! subinterpreters), and how any pointer is recognised as one, exactly,
//! whatever allocator or hook serves PyMem.
//!
//! A private block carries proof of its family in the 16 bytes before it:
//!
//! ```text
//!   backend block: [ 0 or 16 unused | owner word | check word | user bytes... ]
//!                                                             ^ p, 16 mod 32
//!   owner word (p - 16): address of the owning copy's `Owner` | its flag bits
//!   check word (p -  8): cookie ^ p ^ owner word
//! ```
//!
//! A pointer is private exactly when it is 16 mod 32 and its check word
//! matches; everything else is a PyMem block. The words are read only for
//! addresses that are 16 mod 32, never page-aligned, so they lie on the
//! block's own mapped page whatever allocator made it; a foreign block passes
//! only if the 8 bytes before it happen to equal `cookie ^ p ^ owner`, a
//! 2^-64 event for data not written by someone who has read the cookie out
//! of the heap. The check word is cleared before a block is freed or
//! resized, so freed memory never keeps a valid mark.
//!
//! Each copy of pyalloc in a process (one per extension module) has its own
//! backend heap, so a block is released by the copy that made it: the owner
//! word points at that copy's `Owner`, whose functions this copy calls. The
//! layout of the two words, of `Owner`, and the cookie (`cookie.rs`) are the
//! cross-copy ABI, version 1: later releases must keep them.

mod backend;
mod cookie;
mod mapped;
#[cfg(feature = "mimalloc")]
mod mimalloc;
mod system;
#[cfg(feature = "mimalloc")]
mod thread_cache;
mod tracemalloc;

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering::Acquire, Ordering::Release};

#[cfg(feature = "mimalloc")]
use backend::LARGE;
use backend::{Backend, SLACK};

use crate::stats::{self, Hot};
use crate::sys;

pub use tracemalloc::TRACEMALLOC_DOMAIN;

/// Owner-word flags (this copy's own): the backend block starts 32 bytes
/// before the user pointer rather than 16; tracemalloc traces it
/// (`tracemalloc.rs`); and, in bits 2 and 4, which backend made it
/// (`backend.rs`). Other copies mask all four off (`OWNER_FLAGS`).
const STARTS_32_BEFORE: usize = 1;
const TRACKED: usize = 8;
const OWNER_FLAGS: usize = 0xf;
/// `Owner::magic` of ABI version 1: "pyalloc\x01".
const OWNER_MAGIC: u64 = u64::from_le_bytes(*b"pyalloc\x01");

/// What a copy of pyalloc exports to the others through its blocks' owner
/// words (the cross-copy ABI, version 1).
#[repr(C, align(16))]
pub(crate) struct Owner {
    magic: u64,
    /// Releases a block this copy owns.
    release: unsafe extern "C" fn(*mut u8),
    /// Resizes a block this copy owns: the new block (owned by this copy)
    /// or NULL, leaving the old one valid.
    resize: unsafe extern "C" fn(*mut u8, usize) -> *mut u8,
}

static OWNER: Owner = Owner {
    magic: OWNER_MAGIC,
    release: release_for_another_copy,
    resize: resize_for_another_copy,
};

/// The cookie, once the private heap is set up; 0 before.
static COOKIE: AtomicUsize = AtomicUsize::new(0);

/// The cookie, setting up the private heap on first use (which must come
/// before this copy's first backend allocation).
#[inline]
fn cookie() -> usize {
    // Acquire: pairs with `set_up`, so the backend choice is visible too.
    match COOKIE.load(Acquire) {
        0 => set_up(),
        cookie => cookie,
    }
}

/// Whether this copy shows its private blocks to tracemalloc
/// (`tracemalloc.rs`), setting the private heap up first if need be.
pub(crate) fn tracemalloc_tracking() -> bool {
    cookie();
    tracemalloc::enabled()
}

/// Chooses and configures the backend and derives the cookie. Threads that
/// race here do the same, idempotent work.
#[cold]
fn set_up() -> usize {
    backend::configure();
    tracemalloc::configure();
    let cookie = cookie::derive();
    COOKIE.store(cookie, Release);
    cookie
}

/// A pointer known to be a private block (its check word matched).
#[derive(Clone, Copy)]
pub(crate) struct PrivateBlock {
    user: *mut u8,
    owner_word: usize,
}

/// The private block at `p`, if `p` is one. O(1); reads at most the 16
/// bytes before `p`, only when `p` is 16 mod 32.
///
/// # Safety
/// `p` is a live block of some allocator (any alignment, any header).
#[inline]
pub(crate) unsafe fn classify(p: *mut u8) -> Option<PrivateBlock> {
    // SAFETY: as the caller promises.
    match unsafe { classify_quickly(p) } {
        Found::Private(block) => Some(block),
        Found::Other => None,
        // SAFETY: as the caller promises.
        Found::Unknown => unsafe { classify_setting_up(p) },
    }
}

/// `classify` on a copy whose private heap is not set up yet (then no block
/// of its own exists, but another copy's may).
///
/// # Safety
/// As `classify`, and `p` is 16 mod 32 (`classify_quickly` answered
/// `Found::Unknown`).
#[cold]
#[inline(never)]
unsafe fn classify_setting_up(p: *mut u8) -> Option<PrivateBlock> {
    let cookie = cookie();
    // SAFETY: as in `classify_quickly`: `p` is 16 mod 32.
    let (owner_word, check) = unsafe { read_words_out_of_line(p) };
    (check == cookie ^ p as usize ^ owner_word).then_some(PrivateBlock { user: p, owner_word })
}

/// `read_words` behind a call, for the cold path above: inlined after
/// `cookie()`, its reads were attributed to `cookie` in the debug
/// information, where valgrind's suppression (which names `read_words`)
/// did not find them.
///
/// # Safety
/// As `read_words`.
#[inline(never)]
unsafe fn read_words_out_of_line(p: *mut u8) -> (usize, usize) {
    // SAFETY: as the caller promises.
    unsafe { read_words(p) }
}

/// What `classify_quickly` found.
pub(crate) enum Found {
    /// A private block.
    Private(PrivateBlock),
    /// Not a private block.
    Other,
    /// The private heap is not set up on this copy, and `p` is 16 mod 32:
    /// `classify` answers.
    Unknown,
}

/// `classify` without a call: `Found::Unknown` until this copy's private
/// heap is set up (`classify` then sets it up and answers).
///
/// # Safety
/// As `classify`.
#[inline(always)]
pub(crate) unsafe fn classify_quickly(p: *mut u8) -> Found {
    if p as usize % 32 != 16 {
        return Found::Other;
    }
    // SAFETY: `p` is a live block (the caller's promise), so the page it is
    // on is mapped; it is 16 mod 32, so `p - 16` is on that same page (pages
    // are 4096-aligned and p mod 4096 >= 16): readable, whatever the block.
    let (owner_word, check) = unsafe { read_words(p) };
    // Acquire: as in `cookie`.
    match COOKIE.load(Acquire) {
        0 => Found::Unknown,
        cookie if check == cookie ^ p as usize ^ owner_word => {
            Found::Private(PrivateBlock { user: p, owner_word })
        }
        _ => Found::Other,
    }
}

/// Reads the owner and check words before `p`. Volatile, because for a
/// block of another allocator these bytes are not the block's: no optimiser
/// may reason about them. Inlined (it is on every free path), but valgrind, which reports the read for a `malloc` block,
/// still sees this function in the debug information's inline records:
/// `c_tests/valgrind-python.supp` suppresses exactly this read, in a build
/// with debug information (pyalloc's profiles keep it).
///
/// # Safety
/// `p - 16 .. p` is readable.
#[inline(always)]
unsafe fn read_words(p: *mut u8) -> (usize, usize) {
    // SAFETY: as the caller promises; both words are 8-aligned (p is 16-aligned).
    unsafe {
        (
            ptr::read_volatile(p.sub(16).cast::<usize>()),
            ptr::read_volatile(p.sub(8).cast::<usize>()),
        )
    }
}

/// The backend block size for a user size: room for the two words and the
/// placement, and at least 1 byte even for 0. None on overflow.
#[inline]
fn backend_size(size: usize) -> Option<usize> {
    size.max(1).checked_add(SLACK)
}

/// `backend_size` where `size` cannot overflow: a live block's, or one at
/// most `CACHED_SIZE`. Unchecked, which keeps the hot paths free of a
/// branch.
#[inline(always)]
fn backend_size_unchecked(size: usize) -> usize {
    size.max(1) + SLACK
}

/// Where the user pointer goes in a 16-aligned backend block: 16 or 32
/// bytes in, whichever is 16 mod 32.
#[inline]
fn user_offset(start: *mut u8) -> usize {
    if start as usize % 32 == 0 {
        16
    } else {
        32
    }
}

/// A private block of `size` bytes (at least 1 byte of backend room even
/// for 0), 16-aligned, zero-filled by the backend when `zeroed`. NULL when
/// out of memory. Always inlined, and only a block from the thread's cache
/// is made inline: everything else is one call away (`allocate_uncached`),
/// so that the hottest path holds no call of pyalloc's own. (In a shared
/// object, where pyalloc lives in an extension module, the thread-locals
/// it reads may still cost a `__tls_get_addr` call each; in an executable,
/// as in the benchmark, they cost none.)
#[inline(always)]
pub(crate) fn allocate(size: usize, zeroed: bool) -> *mut u8 {
    #[cfg(feature = "mimalloc")]
    if !zeroed && size <= CACHED_SIZE {
        if let Some(start) = thread_cache::take(backend_size_unchecked(size)) {
            // A cached block is a mimalloc block this copy made, so its
            // private heap is set up and the cookie is known on this thread.
            let cookie = COOKIE.load(core::sync::atomic::Ordering::Relaxed);
            // SAFETY: a block of at least `size + SLACK` bytes that the cache
            // gave up, not yet handed out.
            return unsafe { made(start, Backend::Mimalloc, size, cookie) };
        }
    }
    allocate_uncached(size, zeroed)
}

/// The largest user size whose backend block the thread's cache may hold.
#[cfg(feature = "mimalloc")]
const CACHED_SIZE: usize = LARGE - SLACK;

/// `allocate` from a backend: mimalloc, a mapping, the system allocator.
#[inline(never)]
fn allocate_uncached(size: usize, zeroed: bool) -> *mut u8 {
    let Some(total) = backend_size(size) else {
        return ptr::null_mut();
    };
    let cookie = cookie();
    let backend = Backend::for_new(total);
    // SAFETY: a fresh block of `total` bytes from `backend` (or NULL).
    unsafe { made(backend.allocate(total, zeroed), backend, size, cookie) }
}

/// The private block in the fresh backend block `start` of `backend`
/// (`size` user bytes; NULL when `start` is), marked and counted.
///
/// # Safety
/// `start` is NULL or a fresh block of `backend` of `backend_size(size)`
/// bytes, not yet handed out.
#[inline(always)]
unsafe fn made(start: *mut u8, backend: Backend, size: usize, cookie: usize) -> *mut u8 {
    if start.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: as the caller promises, then the block just marked, of `size`
    // user bytes.
    let user = unsafe { traced(mark(start, backend, cookie), size, cookie) };
    stats::bump_then(Hot::PrivateAllocs, user)
}

/// Shows the freshly marked block `user` of `size` user bytes to
/// tracemalloc when this copy does that (`tracemalloc.rs`: one relaxed load
/// when not), and records in its owner word that it did. Returns `user`.
///
/// # Safety
/// `user` is a block `mark` just returned, not yet handed out.
#[inline]
unsafe fn traced(user: *mut u8, size: usize, cookie: usize) -> *mut u8 {
    if tracemalloc::track(user, size) {
        // SAFETY: both words lie inside the block (`mark` wrote them), which
        // no other thread knows of yet.
        unsafe {
            let owner_word = user.sub(16).cast::<usize>().read() | TRACKED;
            user.sub(16).cast::<usize>().write(owner_word);
            user.sub(8)
                .cast::<usize>()
                .write(cookie ^ user as usize ^ owner_word);
        }
    }
    user
}

/// Places the user pointer at 16 mod 32 inside a fresh (or just resized)
/// backend block and writes its two words, the owner word naming
/// `backend`. Returns the user pointer.
///
/// # Safety
/// `start` is a live block of `backend`, of at least `SLACK + 1` bytes.
#[inline]
unsafe fn mark(start: *mut u8, backend: Backend, cookie: usize) -> *mut u8 {
    let start = sys::checked_alignment(start, 16, "the private heap");
    let offset = user_offset(start);
    let placement = if offset == 32 { STARTS_32_BEFORE } else { 0 };
    let user = start.wrapping_add(offset);
    let owner_word = ptr::addr_of!(OWNER) as usize | placement | backend.flag();
    // SAFETY: `offset <= SLACK`, so both words lie inside the block, 8-aligned.
    unsafe {
        user.sub(16).cast::<usize>().write(owner_word);
        user.sub(8)
            .cast::<usize>()
            .write(cookie ^ user as usize ^ owner_word);
    }
    user
}

/// Whether `p` is a private block made by this copy of pyalloc.
///
/// # Safety
/// `p` is a live block of some allocator.
pub(crate) unsafe fn is_own(p: *mut u8) -> bool {
    // SAFETY: as the caller promises.
    unsafe { classify(p) }.is_some_and(|block| block.owner().is_none())
}

impl PrivateBlock {
    /// Another copy's `Owner`, or None when this copy owns the block.
    #[inline]
    fn owner(self) -> Option<&'static Owner> {
        let owner = (self.owner_word & !OWNER_FLAGS) as *const Owner;
        if ptr::eq(owner, &OWNER) {
            return None;
        }
        self.other_owner(owner)
    }

    #[cold]
    fn other_owner(self, owner: *const Owner) -> Option<&'static Owner> {
        // SAFETY: the check word, which only a copy of pyalloc writes, says
        // this address is another copy's `Owner`, a static that lives as long
        // as that copy (extension modules are never unloaded).
        let owner = unsafe { &*owner };
        if owner.magic != OWNER_MAGIC {
            sys::fatal(
                "the private heap",
                "found a block whose owner speaks another pyalloc ABI",
            );
        }
        Some(owner)
    }

    /// The backend block this copy's block lives in.
    fn start(self) -> *mut u8 {
        let offset = if self.owner_word & STARTS_32_BEFORE != 0 {
            32
        } else {
            16
        };
        self.user.wrapping_sub(offset)
    }

    /// The backend that made the block.
    #[inline(always)]
    fn backend(self) -> Backend {
        Backend::of(self.owner_word)
    }

    /// Unregisters the block from tracemalloc if it was registered: before
    /// it goes back to its backend, so that no block made at its address
    /// afterwards can lose its own trace.
    #[inline]
    fn untrace(self) {
        if self.owner_word & TRACKED != 0 {
            tracemalloc::untrack(self.user);
        }
    }

    /// Clears the check word: freed memory must never keep a valid mark.
    ///
    /// # Safety
    /// The block is live.
    unsafe fn unmark(self) {
        // SAFETY: the check word lies inside the live backend block.
        unsafe { self.user.sub(8).cast::<usize>().write(0) };
    }

    /// Releases the block into the thread's cache when this copy made it
    /// with mimalloc, untraced, and the cache has room for it: true then.
    /// False otherwise, with nothing changed, and `release` answers. No call
    /// of pyalloc's own on the way to true (thread-locals as in
    /// `allocate`). `size` as for `release`.
    ///
    /// # Safety
    /// As `release`: the caller gives the block up, and uses it no more
    /// once true is returned.
    #[inline(always)]
    pub(crate) unsafe fn release_quickly(self, size: Option<usize>) -> bool {
        #[cfg(feature = "mimalloc")]
        {
            let Some(size) = size else {
                return false;
            };
            // This copy's own owner word, naming mimalloc and no tracemalloc
            // trace: nothing but the placement flag besides `OWNER`.
            if size > CACHED_SIZE || self.owner_word & !STARTS_32_BEFORE != ptr::addr_of!(OWNER) as usize {
                return false;
            }
            let total = backend_size_unchecked(size);
            let Some(held) = thread_cache::room_for(total) else {
                return false;
            };
            // SAFETY: a live block of this copy, given up: its mark cleared
            // first (`push` may write over the check word), then its
            // mimalloc block of at least `total` bytes (`size` is a lower
            // bound of its user size) kept, in the room `room_for` found.
            unsafe {
                self.unmark();
                thread_cache::push(self.start(), total, held);
            }
            stats::bump(Hot::PrivateFrees);
            true
        }
        #[cfg(not(feature = "mimalloc"))]
        {
            let _ = size;
            false
        }
    }

    /// Releases the block, from any thread. `size` is a lower bound of the
    /// user size when known.
    ///
    /// # Safety
    /// The block is live and not used afterwards.
    #[inline]
    pub(crate) unsafe fn release(self, size: Option<usize>) {
        match self.owner() {
            // SAFETY: another copy's block, released by that copy.
            Some(owner) => unsafe { (owner.release)(self.user) },
            None => {
                self.untrace();
                // SAFETY: the block is live (this function's own contract).
                unsafe { self.unmark() };
                // A live block's size cannot overflow; unchecked, the free
                // path holds no branch to `mi_usable_size`.
                let total = size.map(backend_size_unchecked);
                // SAFETY: this copy's backend block, given up by the caller,
                // released by the backend that made it.
                unsafe { self.backend().release(self.start(), total) }
                stats::bump(Hot::PrivateFrees);
            }
        }
    }

    /// Resizes the block to `new_size` bytes, keeping the first
    /// `min(old, new)`; `old_size`, when known, is the exact user size.
    /// Returns the new block (private, possibly another copy's), or NULL,
    /// leaving this one valid and unchanged.
    ///
    /// # Safety
    /// The block is live; on success it is not used afterwards.
    pub(crate) unsafe fn resize(self, old_size: Option<usize>, new_size: usize) -> *mut u8 {
        if let Some(owner) = self.owner() {
            // SAFETY: another copy's block, resized by that copy.
            return unsafe { (owner.resize)(self.user, new_size) };
        }
        let Some(total) = backend_size(new_size) else {
            return ptr::null_mut();
        };
        // Before the backend may free the old address; on failure the block
        // stays valid untraced (its mark is rewritten without `TRACKED`, or
        // kept, when untracking it again does nothing).
        self.untrace();
        #[cfg(feature = "mimalloc")]
        if self.backend() == Backend::Mimalloc && total > LARGE {
            // SAFETY: as the caller promises.
            return unsafe { self.grow_out_of_mimalloc(old_size, new_size, total) };
        }
        let old_offset = self.user as usize - self.start() as usize;
        let cookie = cookie();
        // SAFETY: the block is live (this function's own contract).
        unsafe { self.unmark() };
        // SAFETY: this copy's live backend block, resized by the backend
        // that made it.
        let start = unsafe { self.backend().resize(self.start(), total) };
        if start.is_null() {
            // SAFETY: the block is unchanged; restore its mark.
            unsafe { mark(self.start(), self.backend(), cookie) };
            return ptr::null_mut();
        }
        // The backend kept the bytes at the old offset; move them when the
        // new block puts the user pointer at the other one.
        let new_offset = user_offset(start);
        if new_offset != old_offset {
            let kept = old_size.map_or(new_size, |old| old.min(new_size));
            // SAFETY: both ranges lie inside the new block of `total` bytes
            // (offsets <= SLACK, kept <= new_size); they may overlap.
            unsafe { ptr::copy(start.add(old_offset), start.add(new_offset), kept) };
        }
        // SAFETY: a live backend block of `total` bytes, then the block just
        // marked, of `new_size` user bytes.
        unsafe { traced(mark(start, self.backend(), cookie), new_size, cookie) }
    }
}

#[cfg(feature = "mimalloc")]
impl PrivateBlock {
    /// A mimalloc block resized above `LARGE`: moved into a mapping of its
    /// own (as `allocate` would have made it), its first
    /// `min(old, new_size)` bytes copied.
    ///
    /// # Safety
    /// As for `resize`: this copy's live mimalloc block.
    #[cold]
    unsafe fn grow_out_of_mimalloc(self, old_size: Option<usize>, new_size: usize, total: usize) -> *mut u8 {
        let cookie = cookie();
        let start = Backend::Mapped.allocate(total, false);
        if start.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a fresh mapped block of `total` bytes, then the block just
        // marked, of `new_size` user bytes.
        let user = unsafe { traced(mark(start, Backend::Mapped, cookie), new_size, cookie) };
        let old_capacity = self.user as usize - self.start() as usize;
        // SAFETY: a live mimalloc block; its usable size bounds its user bytes.
        let old_capacity = unsafe { Backend::Mimalloc.usable_size(self.start()) } - old_capacity;
        let kept = old_size.unwrap_or(old_capacity).min(new_size);
        // SAFETY: the block is live (this function's own contract).
        unsafe { self.unmark() };
        // SAFETY: `kept` bytes are readable in the old block and writable
        // in the new one (`kept <= new_size`); the blocks are distinct. The
        // old block is then given up, as `realloc` does.
        unsafe {
            ptr::copy_nonoverlapping(self.user, user, kept);
            Backend::Mimalloc.release(self.start(), None);
        }
        user
    }
}

/// `Owner::release` for other copies: they classified `user` as this copy's.
unsafe extern "C" fn release_for_another_copy(user: *mut u8) {
    // SAFETY: another copy found `user` to be a live private block.
    match unsafe { classify(user) } {
        // SAFETY: the other copy gives the block up.
        Some(block) => unsafe { block.release(None) },
        None => sys::fatal(
            "the private heap",
            "was passed a block that is not private by another copy of pyalloc",
        ),
    }
}

/// `Owner::resize` for other copies.
unsafe extern "C" fn resize_for_another_copy(user: *mut u8, new_size: usize) -> *mut u8 {
    // SAFETY: another copy found `user` to be a live private block.
    match unsafe { classify(user) } {
        // SAFETY: a live block of this copy, as the other copy found.
        Some(block) => unsafe { block.resize(None, new_size) },
        None => sys::fatal(
            "pyalloc_realloc",
            "another copy of pyalloc passed a block that is not private",
        ),
    }
}
