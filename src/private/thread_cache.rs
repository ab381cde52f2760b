//! Each thread's cache of private blocks it freed, in front of mimalloc:
//! power-of-two size classes, each a list threaded through the free blocks
//! themselves. A thread keeps at most `BUDGET` bytes, or one larger block
//! alone (the backend offers none above `backend::LARGE`, 1 MiB of user
//! bytes); a block that does not fit empties the cache first (the thread
//! has moved on to other sizes).
//!
//! mimalloc 2 retires a page that becomes empty, and gives its pages back to
//! their segment when several empty at once; the next allocation of that
//! size builds them again (for a large page, its segment metadata is
//! rebuilt each time). A thread that frees and then allocates the
//! same sizes, one at a time or in batches, would pay it again and again; the
//! cache hands the blocks back instead. A thread's cache is emptied into
//! mimalloc when the thread exits (`sys/thread_exit.rs`), and from then on it
//! keeps nothing.

use core::cell::Cell;
use core::ptr;

use crate::sys::thread_exit::{self, Keeper};

/// The most bytes a thread keeps in several blocks.
const BUDGET: usize = 1 << 20;
/// Classes: blocks of (2^(k-1), 2^k] bytes, for k up to `CLASSES - 1`.
const CLASSES: usize = 25;
/// `HELD` once the thread's locals are being torn down: keep nothing more.
const GONE: usize = usize::MAX;
/// `HELD` until the thread is watched to its exit (`sys/thread_exit.rs`),
/// which its first kept block asks for. Like `GONE`, above any budget, so
/// one compare sends both to `keep`'s slow path.
const UNWATCHED: usize = usize::MAX - 1;

/// The head of a class's list, written into the free block itself.
#[repr(C)]
struct Entry {
    next: *mut Entry,
    capacity: usize,
}

thread_local! {
    /// Each class's list of free blocks. No destructor: a plain thread-local
    /// access on the allocation path.
    static HEADS: [Cell<*mut Entry>; CLASSES] = const { [const { Cell::new(ptr::null_mut()) }; CLASSES] };
    /// The bytes this thread keeps, `UNWATCHED` or `GONE`.
    static HELD: Cell<usize> = const { Cell::new(UNWATCHED) };
}

/// The thread is exiting (`sys/thread_exit.rs`): empties the cache, for good.
fn thread_exits() {
    HELD.with(|held| held.set(GONE));
    empty();
}

/// Frees every block the thread keeps into mimalloc.
fn empty() {
    HEADS.with(|heads| {
        for head in heads {
            let mut entry = head.replace(ptr::null_mut());
            while !entry.is_null() {
                // SAFETY: every entry is a free mimalloc block that this
                // cache owns; nothing else refers to it.
                unsafe {
                    let next = (*entry).next;
                    super::mimalloc::free(entry.cast());
                    entry = next;
                }
            }
        }
    });
}

/// The class of a block of `size` (> 0) bytes: the `k` with
/// `2^(k-1) < size <= 2^k`.
#[inline]
fn class(size: usize) -> usize {
    (usize::BITS - (size - 1).leading_zeros()) as usize
}

/// A kept block that holds at least `total` bytes, if this thread has one
/// in `total`'s class; it leaves the cache.
#[inline]
pub(super) fn take(total: usize) -> Option<*mut u8> {
    // No need to read `HELD` first: an empty cache, or one emptied for good
    // (`GONE`), has every list empty.
    HEADS.with(|heads| {
        let head = heads.get(class(total))?;
        let entry = head.get();
        // SAFETY: a non-NULL head is a free block this cache owns, holding an
        // Entry written by `push`.
        if entry.is_null() || unsafe { (*entry).capacity } < total {
            return None;
        }
        // SAFETY: as above.
        let (next, capacity) = unsafe { ((*entry).next, (*entry).capacity) };
        head.set(next);
        HELD.with(|held| held.set(held.get() - capacity));
        Some(entry.cast())
    })
}

/// What the thread keeps, when a block of `capacity` bytes fits beside it
/// in the budget and the thread is watched: `push` may then keep the block
/// with no call. None otherwise, and the caller asks `keep`.
#[inline(always)]
pub(super) fn room_for(capacity: usize) -> Option<usize> {
    let held = HELD.with(Cell::get);
    // `UNWATCHED` and `GONE` exceed any budget.
    (capacity <= BUDGET && held <= BUDGET - capacity).then_some(held)
}

/// Keeps a free block of at least `capacity` bytes for this thread's next
/// allocations, emptying the cache first when the block does not fit its
/// budget, and asking for the thread to be watched to its exit on its first
/// block; false when it is too large, or the thread is exiting or cannot be
/// watched, and the caller frees it.
///
/// # Safety
/// `block` is a live mimalloc block of at least `capacity` (>= 16) bytes
/// that the caller gives up; `capacity` is at most `backend::LARGE` (the
/// cache's promise to keep little: `sys/thread_exit.rs`).
#[inline(never)]
pub(super) unsafe fn keep(block: *mut u8, capacity: usize) -> bool {
    if let Some(held) = room_for(capacity) {
        // SAFETY: as the caller promises; the room was checked.
        unsafe { push(block, capacity, held) };
        return true;
    }
    let mut held = HELD.with(Cell::get);
    if held == GONE || class(capacity) >= CLASSES {
        return false;
    }
    if held == UNWATCHED {
        if !thread_exit::watched(Keeper::Cache, thread_exits) {
            return false;
        }
        held = 0;
    }
    if held + capacity > BUDGET && held > 0 {
        empty();
        held = 0;
    }
    // SAFETY: as the caller promises; the class was checked above.
    unsafe { push(block, capacity, held) };
    true
}

/// Puts a free block at the head of its class's list; the thread keeps
/// `held` bytes before it.
///
/// # Safety
/// As `keep`, and `room_for(capacity)` answered `held`, or `keep` checked
/// the class and the budget.
#[inline(always)]
pub(super) unsafe fn push(block: *mut u8, capacity: usize, held: usize) {
    HEADS.with(|heads| {
        let head = &heads[class(capacity)];
        let entry = block.cast::<Entry>();
        // SAFETY: the block is ours, free, 16-aligned and at least 16 bytes.
        unsafe {
            entry.write(Entry {
                next: head.get(),
                capacity,
            })
        };
        head.set(entry);
    });
    HELD.with(|cell| cell.set(held + capacity));
}

#[cfg(test)]
mod tests {
    use super::class;

    #[test]
    fn classes_are_powers_of_two() {
        assert_eq!(class(1), 0);
        assert_eq!(class(2), 1);
        assert_eq!(class(33), 6);
        assert_eq!(class(64), 6);
        assert_eq!(class(65), 7);
        assert_eq!(class(1 << 20), 20);
    }
}
