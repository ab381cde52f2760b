//! A quick "no" for the allocation path: while no thread holds the main
//! interpreter's GIL, the calling thread is not attached to the main
//! interpreter, and two loads with no call say so (this module's confirmed
//! pointer, then the GIL's `locked` word). They replace the call into
//! libpython that reads the attached thread state (from 3.12 a thread-local
//! that a shared libpython reads through `__tls_get_addr`, a large share of
//! a private allocation's cost; on 3.11 a read of the process-wide holder,
//! behind a call). When the word reads 1 (some thread holds the GIL,
//! this one or another; on 3.11 also after `Py_FinalizeEx`, which never
//! drops it), the full check in `attached_*.rs` answers.
//!
//! Why "not 1" proves "not attached" (GIL builds): `take_gil` stores
//! `locked = 1` on the taking thread, only the holder drops the GIL, and
//! between taking it and marking the thread attached, or between detaching
//! and dropping it, CPython runs no code of anyone else's on that thread
//! (3.12's `PyThreadState_Swap`, `Py_Initialize` and the fork child order
//! these steps differently, inside CPython). So a thread attached to the
//! main interpreter, when it calls pyalloc, has stored 1 itself and reads
//! its own store. A wrong "no" could only send a block to the private
//! family, which is sound anywhere; it cannot make pyalloc call PyMem
//! without the GIL.
//!
//! The word's place comes from the version shim (3.11 and 3.12: the
//! header's offsets, on x86-64 Linux only; 3.13-3.15: the runtime's own
//! `_Py_DebugOffsets`, each version's layout checked by its `version`),
//! and is used only once it is confirmed on a thread found attached to the
//! main interpreter: `locked` reads 1 and `last_holder` reads that thread's
//! own state (3.11 and 3.12 also check the switch interval stored next to
//! them). Where the shim knows no place (3.16 and newer, whose table it has
//! not seen; free-threaded builds, which have no GIL to read) or confirmation
//! fails `ATTEMPTS` times, the full check answers always.
//!
//! Only allocation asks: "not attached to the main interpreter" does not
//! tell a subinterpreter with its own GIL from no interpreter at all, which
//! releasing a PyMem block must know.

use core::ptr;
use core::sync::atomic::{AtomicI32, AtomicPtr, AtomicU8, Ordering::Relaxed};

use super::token::MainGil;

/// The main GIL's `locked` word once confirmed; NULL before, and for good
/// where it is unknown or confirmation failed.
static LOCKED: AtomicPtr<AtomicI32> = AtomicPtr::new(ptr::null_mut());
/// How many confirmations were tried. A failed one may be a passing state
/// (3.11: `last_holder` still a subinterpreter's state just ended), so a
/// few more are allowed before the quick read is given up.
static TRIED: AtomicU8 = AtomicU8::new(0);
const ATTEMPTS: u8 = 8;

/// True when the calling thread is certainly not attached to the main
/// interpreter; false when it may be (the full check then answers).
#[inline]
pub(super) fn certainly_not_held() -> bool {
    let locked = LOCKED.load(Relaxed);
    // SAFETY: a non-NULL `LOCKED` is the confirmed `locked` field of the main
    // GIL, in libpython's static memory (`GilWords`). CPython stores it
    // atomically while threads run; (re)initialising the runtime also
    // writes it with plain stores, which on the targets where a shim names
    // a place (x86-64 Linux for 3.11-3.12; x86-64 and AArch64 for 3.13+,
    // where an aligned 4-byte store is single-copy atomic) tear nothing, and
    // any value but 1 still means "not attached".
    let quick = !locked.is_null() && unsafe { (*locked).load(Relaxed) } != 1;
    #[cfg(feature = "testing")]
    if quick {
        QUICK_ANSWERS.fetch_add(1, Relaxed);
    }
    quick
}

/// Confirms the GIL's place the first times a thread holding the main GIL
/// allocates. One relaxed load once confirmed or given up.
#[inline]
pub(super) fn confirm_once(gil: &MainGil) {
    if TRIED.load(Relaxed) < ATTEMPTS {
        confirm(gil);
    }
}

/// Holding the main GIL (`gil`) also serialises calls here.
#[cold]
fn confirm(gil: &MainGil) {
    let Some(words) = super::attached::main_gil_words(gil) else {
        TRIED.store(ATTEMPTS, Relaxed);
        return;
    };
    if !words.locked.is_aligned() || !words.last_holder.is_aligned() {
        TRIED.store(ATTEMPTS, Relaxed);
        return;
    }
    // SAFETY: the shim's words lie in libpython's static memory (its
    // promise, `GilWords`), aligned as checked above. CPython writes both
    // fields atomically while threads run; they are read atomically here.
    let (locked, last_holder) = unsafe { (&*words.locked, &*words.last_holder) };
    if locked.load(Relaxed) == 1 && last_holder.load(Relaxed) == gil.thread_state() {
        LOCKED.store(words.locked.cast_mut(), Relaxed);
        TRIED.store(ATTEMPTS, Relaxed);
    } else {
        TRIED.store(TRIED.load(Relaxed) + 1, Relaxed);
    }
}

/// How many allocations the quick read answered, for the tests.
#[cfg(feature = "testing")]
static QUICK_ANSWERS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The confirmed `locked` word (NULL when there is none) and how many
/// allocations it answered, for the tests (`pyalloc_testing_main_gil`).
#[cfg(feature = "testing")]
pub(crate) fn testing_state() -> (*const AtomicI32, u64) {
    (LOCKED.load(Relaxed), QUICK_ANSWERS.load(Relaxed))
}
