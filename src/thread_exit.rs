//! What a thread gives back when it exits: the private blocks its cache
//! keeps (`private/thread_cache.rs`) and its counter block (`stats.rs`).
//!
//! A thread is watched from its first pyalloc call that keeps something (a
//! counter block claimed, a block cached): this copy's own pthread key is set
//! for it, and the key's destructor empties the cache and returns the block.
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
//! counter block. mimalloc's own heap has the same corner (README, Limits).

use core::cell::Cell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering::AcqRel, Ordering::Acquire};

use crate::sys::{self, ThreadKey};

/// A thread's state: not yet watched, watched (the key is set), exiting
/// (the key's destructor ran, or the key could not be set).
const UNSEEN: u8 = 0;
const WATCHED: u8 = 1;
const EXITING: u8 = 2;

thread_local! {
    /// No destructor: a plain thread-local, readable to the thread's end.
    static STATE: Cell<u8> = const { Cell::new(UNSEEN) };
}

/// This copy's key + 1; 0 before it is made, `NO_KEY` when it cannot be.
static KEY: AtomicUsize = AtomicUsize::new(0);
const NO_KEY: usize = usize::MAX;

/// Whether this thread will give back what it keeps when it exits: true once
/// it is watched; watches it on its first call. False once it is exiting,
/// or when it cannot be watched (no key left, no memory): it must then keep
/// nothing.
#[inline]
pub(crate) fn watched() -> bool {
    match STATE.with(Cell::get) {
        WATCHED => true,
        UNSEEN => watch(),
        _ => false,
    }
}

#[cold]
fn watch() -> bool {
    let Some(key) = key() else {
        STATE.with(|state| state.set(EXITING));
        return false;
    };
    // SAFETY: `key` is a live key of this copy (never deleted once
    // published).
    let set = unsafe { sys::thread_key_set(key) };
    STATE.with(|state| state.set(if set { WATCHED } else { EXITING }));
    set
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
    let made = if sys::pin_this_object() {
        sys::thread_key_create(thread_exits)
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
            unsafe { sys::thread_key_delete(key) };
            (current != NO_KEY).then(|| (current - 1) as ThreadKey)
        }
    }
}

/// The key's destructor: from here on the thread keeps nothing.
/// `extern "system"`: Windows' FLS callback ABI, the C ABI elsewhere.
unsafe extern "system" fn thread_exits(_value: *mut c_void) {
    STATE.with(|state| state.set(EXITING));
    #[cfg(feature = "mimalloc")]
    crate::private::thread_exits();
    crate::stats::thread_exits();
}
