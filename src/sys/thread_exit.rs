//! Giving back, when a thread exits, what it keeps: the private blocks its
//! cache holds (`private/thread_cache.rs`) and its counter block
//! (`stats.rs`), each a [`Keeper`] that registers its own give-back
//! function here (so this module calls up without importing them).
//!
//! A thread is watched from its first pyalloc call that keeps something (a
//! counter block claimed, a block cached): this copy's own pthread key is set
//! for it (macOS: a dyld terminator, Windows: an FLS index; `sys::os`), and
//! the key's destructor calls the keepers' give-back functions.
//! Not a Rust thread-local with `Drop`: glibc runs those (`__cxa_thread_atexit`)
//! once, before any pthread-key destructor, so a thread whose first call runs
//! in a key destructor would register one that never runs. A key set during
//! another key's destructor has its own destructor run in the same round (a
//! key numbered after that one) or the next (before it), up to glibc's
//! `PTHREAD_DESTRUCTOR_ITERATIONS` (4) rounds. Once it has run, the thread is
//! `EXITING`: its frees go straight to the backend and it counts in shared
//! atomics, so nothing more is kept.
//!
//! The one corner left: a thread whose first such call happens in the last
//! round, in the destructor of a key numbered after this one, is never
//! visited again: it keeps what it cached (at most the cache's 1 MiB) and one
//! counter block. mimalloc's own heap has the same corner (crate docs, Limits).

use core::cell::Cell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering::AcqRel, Ordering::Acquire};

use super::ThreadKey;

/// A thread's state: a bit per keeper it watches for (the key is set once
/// the first is), and `EXITING` once the key's destructor ran or the key
/// could not be set. One thread-local read answers a keeper already
/// watched for.
const UNSEEN: u8 = 0;
const EXITING: u8 = 0x80;

/// What a thread may keep until it exits, in the order it is given back.
#[derive(Clone, Copy)]
pub(crate) enum Keeper {
    /// The private blocks in the thread's cache (the `mimalloc` feature).
    #[cfg_attr(not(feature = "mimalloc"), allow(dead_code))]
    Cache = 0,
    /// The thread's counter block.
    Counters = 1,
}
const KEEPERS: usize = 2;

impl Keeper {
    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A keeper's give-back function, once it kept something on this thread.
type GiveBack = Cell<Option<fn()>>;

thread_local! {
    /// No destructor: a plain thread-local, readable to the thread's end.
    static STATE: Cell<u8> = const { Cell::new(UNSEEN) };
    /// Each keeper's give-back function, once it kept something.
    static GIVE_BACK: [GiveBack; KEEPERS] = const { [const { Cell::new(None) }; KEEPERS] };
}

/// This copy's key + 1; 0 before it is made, `NO_KEY` when it cannot be.
static KEY: AtomicUsize = AtomicUsize::new(0);
const NO_KEY: usize = usize::MAX;

/// Whether this thread will call `give_back` for `keeper` when it exits:
/// true once it is watched for `keeper`; watches it on the keeper's first
/// call. False once it is exiting, or when it cannot be watched (no key
/// left, no memory): the keeper must then keep nothing.
#[inline]
pub(crate) fn watched(keeper: Keeper, give_back: fn()) -> bool {
    let state = STATE.with(Cell::get);
    state & keeper.bit() != 0 || watch(keeper, give_back, state)
}

#[cold]
fn watch(keeper: Keeper, give_back: fn(), state: u8) -> bool {
    if state & EXITING != 0 {
        return false;
    }
    if state == UNSEEN {
        // SAFETY: `key` is a live key of this copy (never deleted once
        // published).
        let set = key().is_some_and(|key| unsafe { super::thread_key_set(key) });
        if !set {
            STATE.with(|state| state.set(EXITING));
            return false;
        }
    }
    GIVE_BACK.with(|slots| slots[keeper as usize].set(Some(give_back)));
    STATE.with(|cell| cell.set(state | keeper.bit()));
    true
}

/// This copy's key, made on first use.
fn key() -> Option<ThreadKey> {
    match KEY.load(Acquire) {
        0 => make_key(),
        NO_KEY => None,
        key => Some((key - 1) as ThreadKey),
    }
}

#[cold]
fn make_key() -> Option<ThreadKey> {
    // The C library (Windows: FLS) calls the key's destructor, this copy's
    // code, at every watched thread's exit: the object holding it must stay
    // loaded, unloaded or not.
    let made = if super::pin_this_object() {
        super::thread_key_create(thread_exits)
    } else {
        None
    };
    let Some(key) = made else {
        let _ = KEY.compare_exchange(0, NO_KEY, AcqRel, Acquire);
        return None;
    };
    match KEY.compare_exchange(0, key as usize + 1, AcqRel, Acquire) {
        Ok(_) => Some(key),
        Err(current) => {
            // Another thread made one first: use it, drop ours (no thread
            // has set ours).
            // SAFETY: our own key, never published.
            unsafe { super::thread_key_delete(key) };
            (current != NO_KEY).then(|| (current - 1) as ThreadKey)
        }
    }
}

/// The key's destructor: from here on the thread keeps nothing.
/// `extern "system"`: Windows' FLS callback ABI, the C ABI elsewhere.
unsafe extern "system" fn thread_exits(_value: *mut c_void) {
    STATE.with(|state| state.set(EXITING));
    GIVE_BACK.with(|slots| {
        for slot in slots {
            if let Some(give_back) = slot.take() {
                give_back();
            }
        }
    });
}
