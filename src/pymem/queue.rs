//! The queue of deferred releases: main-interpreter PyMem blocks released on a thread
//! that may not call `PyMem_Free` (GIL released, a worker thread, a
//! subinterpreter), freed by the next thread that enters pyalloc holding the
//! main interpreter's GIL, or by `pyalloc_collect()`.
//!
//! A lock-free stack: push with CAS; a drain takes the whole list with one
//! swap, so there is no ABA. Nothing here calls into Python: a thread
//! without the GIL only reads an atomic and pushes.
//!
//! Interpreter lifetimes. A PyMem block belongs to the lifetime
//! (`Py_Initialize` .. `Py_FinalizeEx`) that made it; freeing it into a later
//! one corrupts that heap (3.12+ aborts). Finalization has no fence a worker
//! can see, so every queued block carries the lifetime that was current when
//! it was released, read from `STATE` in one atomic load, and a drain frees
//! only blocks of the current lifetime:
//!
//! - The first GIL holder that enters pyalloc in a lifetime registers
//!   `at_exit` with `Py_AtExit` and marks the lifetime tracked.
//! - `at_exit` runs at the end of `Py_FinalizeEx`: it moves `STATE` to the
//!   next lifetime, untracked, then orphans (leaves unfreed, counts)
//!   everything queued.
//! - A release reads `STATE` once. Untracked: there is no lifetime to free
//!   into (finalizing, finalized, or not yet seen), so the block is orphaned.
//!   Tracked: the block is queued with that lifetime. If `at_exit` runs
//!   between that read and the push, the block is queued with a lifetime
//!   that has ended, and no later drain frees it.
//!
//! If `Py_AtExit`'s table (32 entries) is full, no lifetime is ever tracked
//! again in this process: releases without the GIL are orphaned from then on
//! (counted), which is safe, and nothing else changes.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};

use crate::cpython::{self, MainGil};
use crate::stats::{DEFERRED_FREED, DEFERRED_ORPHANED, DEFERRED_QUEUED, DEFERRED_UNSTARTED};
use crate::sys;

/// `lifetime << 2 | TRACKED | UNTRACKABLE`.
static STATE: AtomicU64 = AtomicU64::new(0);
/// This lifetime's `at_exit` is registered.
const TRACKED: u64 = 1;
/// `Py_AtExit` failed once: never track again.
const UNTRACKABLE: u64 = 2;
const LIFETIME_SHIFT: u32 = 2;

static HEAD: AtomicPtr<Node> = AtomicPtr::new(ptr::null_mut());

/// A list link. A block of at least this size and alignment is its own
/// node; a smaller one (or one of unknown size) gets a `BoxedNode` from the
/// system allocator, and the pointer to that carries `BOXED_TAG`.
#[repr(C)]
struct Node {
    next: *mut Node,
    lifetime: u64,
}

#[repr(C)]
struct BoxedNode {
    link: Node,
    block: *mut u8,
}

const BOXED_TAG: usize = 1;

/// Queues a main-interpreter PyMem block for `PyMem_Free` by a later GIL
/// holder, or orphans it when no lifetime can take it. Never calls into
/// Python. `known_size` is a lower bound of the block's size, when known.
///
/// # Safety
/// `block` is a live PyMem block of the main interpreter that the caller
/// gives up; nothing uses it afterwards.
pub(crate) unsafe fn defer(block: *mut u8, known_size: Option<usize>) {
    DEFERRED_QUEUED.fetch_add(1, Relaxed);
    // Acquire: pairs with `at_exit`'s and `on_gil_entry`'s stores.
    let state = STATE.load(Acquire);
    if state & TRACKED == 0 {
        DEFERRED_ORPHANED.fetch_add(1, Relaxed);
        if state & UNTRACKABLE == 0 && cpython::interpreter_running() {
            unstarted();
        }
        return;
    }
    pause_point();
    let lifetime = state >> LIFETIME_SHIFT;
    let fits = known_size.is_some_and(|size| size >= core::mem::size_of::<Node>())
        && block as usize % core::mem::align_of::<Node>() == 0;
    let node = if fits {
        let node = block.cast::<Node>();
        // SAFETY: the block is ours now, large and aligned enough for a Node.
        unsafe {
            node.write(Node {
                next: ptr::null_mut(),
                lifetime,
            })
        };
        node
    } else {
        let boxed = sys::malloc(core::mem::size_of::<BoxedNode>(), false).cast::<BoxedNode>();
        if boxed.is_null() {
            // Out of memory while freeing: keeping the block is the only safe
            // choice left. Counted, so it is not silent.
            DEFERRED_ORPHANED.fetch_add(1, Relaxed);
            return;
        }
        // SAFETY: `boxed` is a fresh, exclusively owned, suitably aligned
        // allocation of a BoxedNode.
        unsafe {
            boxed.write(BoxedNode {
                link: Node {
                    next: ptr::null_mut(),
                    lifetime,
                },
                block,
            })
        };
        boxed.cast::<u8>().wrapping_add(BOXED_TAG).cast::<Node>()
    };
    push(node);
}

/// An untracked release while an interpreter runs: its lifetime started
/// without a thread holding the GIL entering pyalloc (not finalization,
/// which has cleared `Py_IsInitialized` before the exit hook ends a
/// lifetime). Counted, and said once per copy of pyalloc, on stderr
/// (allocating nothing: this runs inside the allocator).
#[cold]
fn unstarted() {
    if DEFERRED_UNSTARTED.fetch_add(1, Relaxed) == 0 {
        sys::warn_parts(&[
            "pyalloc: a PyMem block released without the GIL is left allocated: no thread holding the ",
            "GIL has called pyalloc since Py_Initialize, so its interpreter lifetime is unknown. If it ",
            "belongs to this interpreter, call pyalloc_collect() once after Py_Initialize (an extension: ",
            "in its module's exec function). Counted in deferred_unstarted.\n",
        ]);
    }
}

fn push(node: *mut Node) {
    let mut head = HEAD.load(Relaxed);
    loop {
        // SAFETY: `node` (untagged) is owned by this thread until the CAS
        // below publishes it.
        unsafe { (*untag(node)).next = head };
        match HEAD.compare_exchange_weak(head, node, Release, Relaxed) {
            Ok(_) => return,
            Err(current) => head = current,
        }
    }
}

fn untag(node: *mut Node) -> *mut Node {
    (node as usize & !BOXED_TAG) as *mut Node
}

/// Housekeeping for a thread holding the main interpreter's GIL as it enters
/// pyalloc: tracks this lifetime (once) and frees what others queued;
/// returns how many it freed. Two relaxed loads when there is nothing to do.
#[inline]
pub(crate) fn on_gil_entry(gil: &MainGil) -> usize {
    if HEAD.load(Relaxed).is_null() && STATE.load(Relaxed) & (TRACKED | UNTRACKABLE) != 0 {
        return 0;
    }
    on_gil_entry_slow(gil)
}

#[cold]
fn on_gil_entry_slow(gil: &MainGil) -> usize {
    let state = STATE.load(Acquire);
    if state & (TRACKED | UNTRACKABLE) == 0 {
        // Several threads may get here at once only in a free-threaded build;
        // the CAS lets one of them register.
        let claimed = STATE
            .compare_exchange(state, state | TRACKED, AcqRel, Relaxed)
            .is_ok();
        // SAFETY: `at_exit` is this copy's code, kept loaded for the
        // process once `pin_this_object` says so (it is asked first).
        if claimed && !(sys::pin_this_object() && unsafe { cpython::at_exit(gil, at_exit) }) {
            STATE.store(state | UNTRACKABLE, Release);
        }
    }
    drain(gil)
}

/// Frees every queued block of the current lifetime with `PyMem_Free` and
/// orphans the rest; returns how many were freed.
pub(crate) fn drain(gil: &MainGil) -> usize {
    let state = STATE.load(Acquire);
    // Untracked (Py_AtExit failed, possibly after a block was queued): no
    // lifetime tag can be trusted, so nothing is freed.
    let current = (state & TRACKED != 0).then_some(state >> LIFETIME_SHIFT);
    take_all(|lifetime, block| {
        if Some(lifetime) != current {
            return false;
        }
        // SAFETY: a main-interpreter PyMem block released in this lifetime
        // and given up by its releaser.
        unsafe { super::release(gil, block) };
        true
    })
}

/// Empties the queue: hands each block, with the lifetime it was released
/// in, to `free`, which says whether it freed it; frees pyalloc's own nodes
/// and counts the blocks freed and orphaned. Returns how many were freed.
fn take_all(mut free: impl FnMut(u64, *mut u8) -> bool) -> usize {
    let mut node = HEAD.swap(ptr::null_mut(), Acquire);
    let (mut freed, mut orphaned) = (0, 0);
    while !node.is_null() {
        let link = untag(node);
        let boxed = node as usize & BOXED_TAG != 0;
        // SAFETY: every node on the list was published by `push` (Release,
        // paired with the Acquire swap) and is owned by this thread alone
        // now; a boxed node came from the system allocator.
        let (next, lifetime, block) = unsafe {
            let block = if boxed {
                (*link.cast::<BoxedNode>()).block
            } else {
                link.cast::<u8>()
            };
            ((*link).next, (*link).lifetime, block)
        };
        if boxed {
            // SAFETY: as above; nothing reads the node after this.
            unsafe { sys::free(link.cast()) };
        }
        if free(lifetime, block) {
            freed += 1;
        } else {
            orphaned += 1;
        }
        node = next;
    }
    DEFERRED_FREED.fetch_add(freed, Relaxed);
    DEFERRED_ORPHANED.fetch_add(orphaned, Relaxed);
    freed as usize
}

/// `Py_AtExit` hook: the lifetime is over, its heap is gone. Whatever is
/// queued is left alone; only pyalloc's own nodes are freed.
extern "C" fn at_exit() {
    let state = STATE.load(Acquire);
    let next = ((state >> LIFETIME_SHIFT) + 1) << LIFETIME_SHIFT | (state & UNTRACKABLE);
    STATE.store(next, Release);
    take_all(|_, _| false);
}

/// A test's hook into the window between reading the lifetime and queuing
/// a block (`pyalloc_testing_set_pause`, the `testing` feature).
#[cfg(feature = "testing")]
pub(crate) static PAUSE: AtomicPtr<()> = AtomicPtr::new(ptr::null_mut());

#[cfg(feature = "testing")]
fn pause_point() {
    let raw = PAUSE.load(Acquire);
    if !raw.is_null() {
        // SAFETY: only `pyalloc_testing_set_pause` stores here, and it
        // stores a valid `extern "C" fn()`.
        let hook: extern "C" fn() = unsafe { core::mem::transmute(raw) };
        hook();
    }
}

#[cfg(not(feature = "testing"))]
#[inline(always)]
fn pause_point() {}
