//! The deferred-free queue: pymem blocks released on a thread that does not
//! hold the main interpreter's GIL, where `PyMem_Free` must not be called.
//!
//! A lock-free stack (push with CAS, drain by taking the whole list with one
//! swap, so there is no ABA). It is drained by the next GIL holder that enters
//! the allocator, by `pyalloc_collect`, and by a `Py_AddPendingCall` callback
//! scheduled once more than `PENDING_CALL_BOUND` blocks wait.
//!
//! Blocks of at least one pointer in size hold their own list node; smaller
//! ones (or ones whose size is unknown, from the C API) get a node from the
//! system allocator.
//!
//! A block never outlives its interpreter into the next one: blocks released
//! after `Py_FinalizeEx` has begun, or still queued when it ends, are left
//! unfreed and counted as orphaned. From 3.12 pymalloc's state belongs to the
//! interpreter, and freeing an old block into a new one corrupts it.

use core::ffi::{c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::*};

use crate::stats;
use crate::{family, python, sys};

/// How many pymem blocks may wait in the deferred queue before a drain is
/// scheduled with `Py_AddPendingCall` (the next GIL holder that allocates
/// drains it sooner).
pub const PENDING_CALL_BOUND: usize = 256;

/// A list link. A block of at least this size is its own node; otherwise the
/// node is a `BoxedNode` and the pointer to it carries `BOXED_TAG`.
#[repr(C)]
struct Node {
    next: *mut Node,
}

#[repr(C)]
struct BoxedNode {
    link: Node,
    block: *mut u8,
}

const BOXED_TAG: usize = 1;

static HEAD: AtomicPtr<Node> = AtomicPtr::new(ptr::null_mut());
static QUEUED: AtomicUsize = AtomicUsize::new(0);
static PENDING_CALL_SCHEDULED: AtomicBool = AtomicBool::new(false);
/// Whether this interpreter's `Py_AtExit` hook is registered.
static EXIT_HOOK_REGISTERED: AtomicBool = AtomicBool::new(false);

/// Queues a pymem block for `PyMem_Free` by a later GIL holder.
/// `known_size` is a lower bound on the block's usable size, when known.
///
/// # Safety
/// `block` is a live pymem block of the main interpreter that the caller
/// gives up; nothing uses it afterwards.
pub(crate) unsafe fn defer(block: *mut u8, known_size: Option<usize>) {
    stats::DEFERRED_QUEUED.fetch_add(1, Relaxed);
    if !python::is_initialized() {
        // Finalization has begun or the interpreter is gone: never free into it.
        stats::DEFERRED_ORPHANED.fetch_add(1, Relaxed);
        return;
    }
    let node = if known_size.is_some_and(|size| size >= core::mem::size_of::<Node>()) {
        // pymem blocks are 16-aligned, so a Node fits aligned at the start.
        block.cast::<Node>()
    } else {
        let boxed = sys::malloc(core::mem::size_of::<BoxedNode>()).cast::<BoxedNode>();
        if boxed.is_null() {
            // Out of memory while freeing: keeping the block is the only safe
            // choice left. Counted, so it is not silent.
            stats::DEFERRED_ORPHANED.fetch_add(1, Relaxed);
            return;
        }
        // SAFETY: `boxed` is a fresh, exclusively owned, suitably aligned
        // allocation of a BoxedNode.
        unsafe {
            boxed.write(BoxedNode {
                link: Node {
                    next: ptr::null_mut(),
                },
                block,
            })
        };
        boxed.cast::<u8>().wrapping_add(BOXED_TAG).cast::<Node>()
    };
    // Counted before it is published: a GIL holder may drain (and uncount)
    // the node the moment `push` makes it visible, and counting afterwards
    // let the count wrap below zero. Counting first only ever over-counts a
    // block for a moment, and the count is just the pending-call trigger.
    let queued = QUEUED.fetch_add(1, Relaxed).wrapping_add(1);
    push(node);
    if queued > PENDING_CALL_BOUND && !PENDING_CALL_SCHEDULED.swap(true, AcqRel) {
        if python::is_initialized() && python::add_pending_call(drain_pending_call) {
            stats::PENDING_CALLS.fetch_add(1, Relaxed);
        } else {
            PENDING_CALL_SCHEDULED.store(false, Release);
        }
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

/// Housekeeping for a thread that holds the main GIL and is entering the
/// allocator: frees what others queued and registers the exit hook once per
/// interpreter. Two relaxed loads when there is nothing to do.
#[inline]
pub(crate) fn on_gil_entry() {
    if !HEAD.load(Relaxed).is_null() || !EXIT_HOOK_REGISTERED.load(Relaxed) {
        on_gil_entry_slow();
    }
}

#[cold]
fn on_gil_entry_slow() {
    if !EXIT_HOOK_REGISTERED.load(Relaxed) {
        // Only GIL holders set it and only the exit hook clears it, so this
        // does not race. If CPython's Py_AtExit table (32 slots) is full, the
        // hook is missing: blocks released once finalization has begun are
        // still orphaned (`is_initialized`), but blocks queued before it and
        // never drained would be freed by the next interpreter's first GIL
        // holder. Not retried: a retry would cost every GIL entry.
        EXIT_HOOK_REGISTERED.store(true, Relaxed);
        python::at_exit(orphan_queue_at_exit);
    }
    // SAFETY: the caller holds the main interpreter's GIL.
    unsafe { drain() };
}

/// Frees every queued block with `PyMem_Free`; returns how many.
///
/// # Safety
/// The calling thread holds the main interpreter's GIL.
pub(crate) unsafe fn drain() -> usize {
    let mut node = HEAD.swap(ptr::null_mut(), Acquire);
    let mut freed = 0;
    while !node.is_null() {
        let link = untag(node);
        // SAFETY: every node on the list was published by `push` (Release,
        // paired with the Acquire swap) and is now owned by this thread alone.
        // Its block is a live pymem block of the main interpreter, and the
        // caller holds that interpreter's GIL.
        unsafe {
            let next = (*link).next;
            if node as usize & BOXED_TAG != 0 {
                let boxed = link.cast::<BoxedNode>();
                family::pymem_free((*boxed).block);
                sys::free(boxed.cast());
            } else {
                family::pymem_free(link.cast());
            }
            node = next;
        }
        freed += 1;
    }
    if freed > 0 {
        // Every node was counted before `push` published it (Release, paired
        // with the Acquire swap above), so the count cannot go below zero.
        let before = QUEUED.fetch_sub(freed, Relaxed);
        debug_assert!(before >= freed, "deferred queue count below zero");
        stats::DEFERRED_FREED.fetch_add(freed as u64, Relaxed);
    }
    freed
}

/// Runs on the main thread with the GIL, scheduled by `defer`.
extern "C" fn drain_pending_call(_: *mut c_void) -> c_int {
    PENDING_CALL_SCHEDULED.store(false, Release);
    if python::holds_main_gil() {
        // SAFETY: just checked that this thread holds the main GIL.
        unsafe { drain() };
    }
    0
}

/// `Py_AtExit` hook: the interpreter is gone, so whatever is still queued
/// belongs to a dead heap. Leave those blocks alone; free only our nodes.
extern "C" fn orphan_queue_at_exit() {
    let mut node = HEAD.swap(ptr::null_mut(), Acquire);
    let mut orphaned = 0;
    while !node.is_null() {
        let link = untag(node);
        // SAFETY: as in `drain`, the list is owned by this thread now. Boxed
        // nodes came from the system allocator; the pymem blocks are not
        // touched.
        unsafe {
            let next = (*link).next;
            if node as usize & BOXED_TAG != 0 {
                sys::free(link.cast());
            }
            node = next;
        }
        orphaned += 1;
    }
    QUEUED.fetch_sub(orphaned, Relaxed);
    stats::DEFERRED_ORPHANED.fetch_add(orphaned as u64, Relaxed);
    EXIT_HOOK_REGISTERED.store(false, Relaxed);
    PENDING_CALL_SCHEDULED.store(false, Relaxed);
}
