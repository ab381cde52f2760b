//! Allocation statistics that cost the hot path one thread-local increment.
//!
//! Each thread owns a `CounterBlock` from a global, never-freed list: only the
//! owner writes it (a relaxed load and store, no locked instruction), any
//! thread may sum all blocks. A block is recycled when its thread exits
//! (`sys/thread_exit.rs`, whatever the thread's first call was and wherever it
//! ran), with its counts kept, so the list is as long as the most threads ever alive at
//! once. Rare events (deferrals, copies) use global atomics.

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering::*};

use crate::sys::{
    self,
    thread_exit::{self, Keeper},
};

/// The per-thread counters on the fast path.
#[derive(Clone, Copy)]
#[repr(usize)]
pub(crate) enum Hot {
    PymemAllocs,
    PymemFrees,
    PrivateAllocs,
    PrivateFrees,
}
const HOT_COUNT: usize = 4;

/// Events on slow paths, counted in shared atomics.
pub(crate) static DEFERRED_QUEUED: AtomicU64 = AtomicU64::new(0);
pub(crate) static DEFERRED_FREED: AtomicU64 = AtomicU64::new(0);
pub(crate) static DEFERRED_ORPHANED: AtomicU64 = AtomicU64::new(0);
pub(crate) static REHOMED: AtomicU64 = AtomicU64::new(0);
pub(crate) static INVALID_POINTERS: AtomicU64 = AtomicU64::new(0);
pub(crate) static DEFERRED_UNSTARTED: AtomicU64 = AtomicU64::new(0);

/// A snapshot of one copy of pyalloc's counters (`pyalloc_stats` in C):
/// each extension module that links pyalloc has its own copy.
///
/// Blocks that C allocated with `PyMem_Malloc` and pyalloc released count as
/// frees without a matching alloc, so `allocs - frees` is not a live count.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Blocks allocated with `PyMem_Malloc`/`PyMem_Calloc` (main GIL held).
    pub pymem_allocs: u64,
    /// Blocks released with `PyMem_Free`, directly or from the deferred queue.
    pub pymem_frees: u64,
    /// Private blocks allocated (no GIL, no interpreter, a subinterpreter).
    pub private_allocs: u64,
    /// Private blocks this copy made and released.
    pub private_frees: u64,
    /// PyMem blocks released on a thread without the GIL, not yet freed.
    pub deferred_pending: u64,
    /// Deferred PyMem blocks freed later by a GIL holder.
    pub deferred_freed: u64,
    /// PyMem blocks left unfreed because they were released when no
    /// interpreter lifetime could take them: during or after `Py_FinalizeEx`
    /// (freeing them into a later interpreter would corrupt it), or before
    /// pyalloc first saw the current interpreter on a thread holding its GIL.
    pub deferred_orphaned: u64,
    /// Blocks copied into new `PyMem_Malloc` blocks so that C can
    /// `PyMem_Free` them (private blocks, or vectors not built by `PyAlloc`).
    pub rehomed: u64,
    /// Pointers that cannot have come from pyalloc or `PyMem_Malloc` (not
    /// 8-byte aligned), refused by the C API.
    pub invalid_pointers: u64,
    /// Of `deferred_orphaned`: PyMem blocks released without the GIL while an
    /// interpreter was running, but before any thread holding its GIL had
    /// called pyalloc in its lifetime (the first one also prints a warning).
    /// Calling `pyalloc_collect()` once after `Py_Initialize` avoids them.
    pub deferred_unstarted: u64,
}

#[repr(C, align(64))]
struct CounterBlock {
    counts: [AtomicU64; HOT_COUNT],
    in_use: AtomicBool,
    /// Written once before the block is published, immutable after.
    next: AtomicPtr<CounterBlock>,
}

impl CounterBlock {
    const fn new(in_use: bool) -> Self {
        CounterBlock {
            counts: [const { AtomicU64::new(0) }; HOT_COUNT],
            in_use: AtomicBool::new(in_use),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

/// Every thread's block, newest first.
static BLOCKS: AtomicPtr<CounterBlock> = AtomicPtr::new(ptr::null_mut());
/// Shared by threads that have no block (thread-local storage already torn
/// down, or no memory for a block); updated with `fetch_add`.
static SHARED: CounterBlock = CounterBlock::new(true);

thread_local! {
    /// This thread's block: NULL until its first count, `&SHARED` once the
    /// thread is exiting (or could not be watched, or had no memory for a
    /// block). No destructor, so reading it is a plain thread-local access
    /// and it stays readable to the very end.
    static BLOCK: Cell<*const CounterBlock> = const { Cell::new(ptr::null()) };
}

/// The thread is exiting (`sys/thread_exit.rs`): it gives its block back, with
/// its counts kept, and counts in SHARED (atomically) from here on, since the
/// block may go to another thread.
fn thread_exits() {
    let block = BLOCK.with(|block| block.replace(&SHARED));
    if let Some(block) = block_ref(block).filter(|block| !ptr::eq(*block, &SHARED)) {
        block.in_use.store(false, Release);
    }
}

fn block_ref(block: *const CounterBlock) -> Option<&'static CounterBlock> {
    // SAFETY: blocks are never freed once published, and null stays None.
    unsafe { block.as_ref() }
}

/// Adds one to `counter` for the calling thread.
#[inline]
pub(crate) fn bump(counter: Hot) {
    bump_then(counter, ());
}

/// `bump`, then `value`: where the count is a function's last step, every
/// path but the thread's own block is a tail call, so the caller keeps
/// nothing live across a call.
#[inline]
pub(crate) fn bump_then<T>(counter: Hot, value: T) -> T {
    match block_ref(BLOCK.with(Cell::get)) {
        Some(block) if !ptr::eq(block, &SHARED) => {
            // Only this thread writes its block, so load + store is exact and
            // compiles to a plain add; readers see each store whole.
            let count = &block.counts[counter as usize];
            count.store(count.load(Relaxed).wrapping_add(1), Relaxed);
            value
        }
        _ => bump_shared_or_first_then(counter, value),
    }
}

/// `bump_then` for a thread counting in `SHARED` or not counting yet.
#[cold]
#[inline(never)]
fn bump_shared_or_first_then<T>(counter: Hot, value: T) -> T {
    if BLOCK.with(Cell::get).is_null() {
        bump_first(counter);
    } else {
        SHARED.counts[counter as usize].fetch_add(1, Relaxed);
    }
    value
}

/// The thread's first count: claims a block for as long as the thread lives
/// (or counts in SHARED from here on when it cannot be watched to its exit,
/// or there is no memory for a block).
#[cold]
fn bump_first(counter: Hot) {
    let block = if thread_exit::watched(Keeper::Counters, thread_exits) {
        claim_block().unwrap_or(&SHARED)
    } else {
        &SHARED
    };
    BLOCK.with(|slot| slot.set(block));
    bump(counter);
}

/// Takes a free block from the list, or makes one with the system allocator
/// (never with the global allocator: this runs inside it).
#[cold]
fn claim_block() -> Option<&'static CounterBlock> {
    let mut cursor = BLOCKS.load(Acquire);
    while let Some(block) = block_ref(cursor) {
        if !block.in_use.load(Relaxed)
            && block
                .in_use
                .compare_exchange(false, true, Acquire, Relaxed)
                .is_ok()
        {
            return Some(block);
        }
        cursor = block.next.load(Relaxed);
    }
    let fresh = sys::aligned_alloc(
        core::mem::align_of::<CounterBlock>(),
        core::mem::size_of::<CounterBlock>(),
    )
    .cast::<CounterBlock>();
    if fresh.is_null() {
        return None;
    }
    // SAFETY: `fresh` is a new allocation that nothing else references, with
    // the size and alignment of a CounterBlock. Once the CAS publishes it, it
    // is never written again except through its atomics, and never freed.
    unsafe {
        fresh.write(CounterBlock::new(true));
        let mut head = BLOCKS.load(Relaxed);
        loop {
            (*fresh).next.store(head, Relaxed);
            match BLOCKS.compare_exchange_weak(head, fresh, Release, Relaxed) {
                Ok(_) => return Some(&*fresh),
                Err(current) => head = current,
            }
        }
    }
}

/// Sums every thread's counters and the shared ones.
pub(crate) fn snapshot() -> Stats {
    let mut hot = [0u64; HOT_COUNT];
    let mut add = |block: &CounterBlock| {
        for (sum, count) in hot.iter_mut().zip(&block.counts) {
            *sum = sum.wrapping_add(count.load(Relaxed));
        }
    };
    add(&SHARED);
    let mut cursor = BLOCKS.load(Acquire);
    while let Some(block) = block_ref(cursor) {
        add(block);
        cursor = block.next.load(Relaxed);
    }
    let queued = DEFERRED_QUEUED.load(Relaxed);
    let freed = DEFERRED_FREED.load(Relaxed);
    let orphaned = DEFERRED_ORPHANED.load(Relaxed);
    Stats {
        pymem_allocs: hot[Hot::PymemAllocs as usize],
        pymem_frees: hot[Hot::PymemFrees as usize],
        private_allocs: hot[Hot::PrivateAllocs as usize],
        private_frees: hot[Hot::PrivateFrees as usize],
        deferred_pending: queued.saturating_sub(freed + orphaned),
        deferred_freed: freed,
        deferred_orphaned: orphaned,
        rehomed: REHOMED.load(Relaxed),
        invalid_pointers: INVALID_POINTERS.load(Relaxed),
        deferred_unstarted: DEFERRED_UNSTARTED.load(Relaxed),
    }
}

/// How many counter blocks are claimed by threads, and how many exist.
#[cfg(feature = "testing")]
pub(crate) fn counter_blocks() -> (usize, usize) {
    let (mut in_use, mut total) = (0, 0);
    let mut cursor = BLOCKS.load(Acquire);
    while let Some(block) = block_ref(cursor) {
        total += 1;
        in_use += usize::from(block.in_use.load(Relaxed));
        cursor = block.next.load(Relaxed);
    }
    (in_use, total)
}
