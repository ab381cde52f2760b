//! A quick "no" for the allocation path: while no thread holds the main
//! interpreter's GIL, the calling thread is not attached to the main
//! interpreter, and one relaxed load of the GIL's `locked` word says so. It
//! replaces the call into libpython that reads the attached thread state
//! (from 3.12 a thread-local that a shared libpython reads through
//! `__tls_get_addr`: about 1.5 ns of a 8-9 ns private allocation and free;
//! on 3.11 a read of the process-wide holder, behind a call).
//! When some thread holds the GIL, this thread or another, the full check in
//! `attached_*.rs` answers.
//!
//! Why "not locked" proves "not attached" (GIL builds): CPython takes the GIL
//! (`take_gil` stores `locked = 1` on the taking thread) before it marks the
//! thread attached, and detaches the thread before it drops the GIL, and only
//! the holder drops it. So a thread attached to the main interpreter has
//! stored 1 itself and reads its own store. A wrong "no" could only send a
//! block to the private family, which is sound anywhere; it cannot make
//! pyalloc call PyMem without the GIL.
//!
//! The word's place comes from the version shim (3.11 and 3.12: the
//! header's offsets, on x86-64; 3.13: the runtime's own `_Py_DebugOffsets`),
//! and is used only once it is confirmed on a thread that holds the GIL:
//! `locked` reads 1 and `last_holder` reads that thread's own state. Where
//! the shim knows no place (3.14 and newer, which cannot be run here;
//! free-threaded builds, which have no GIL to read) or the confirmation
//! fails, the full check answers always.
//!
//! Only allocation asks: "not attached to the main interpreter" does not
//! tell a subinterpreter with its own GIL from no interpreter at all, which
//! releasing a PyMem block must know.

use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering::Relaxed};

use pyo3_ffi::{PyInterpreterState, PyThreadState};

/// Two fields of the main interpreter's GIL (`struct _gil_runtime_state`),
/// as a version shim finds them. Both lie in libpython's static memory
/// (`_PyRuntime`, which holds the main interpreter from 3.11 on), so they
/// are never freed or moved, not even by `Py_FinalizeEx`.
pub(super) struct GilWords {
    /// `locked`, an `int`: 1 while some thread holds the GIL.
    pub(super) locked: *const AtomicI32,
    /// `last_holder`: the thread state that took the GIL last.
    pub(super) last_holder: *const AtomicPtr<PyThreadState>,
}

/// The main GIL's `locked` word once confirmed; NULL before, and for good
/// where it is unknown or the confirmation failed.
static LOCKED: AtomicPtr<AtomicI32> = AtomicPtr::new(ptr::null_mut());
/// Whether the confirmation was tried (once per process).
static TRIED: AtomicBool = AtomicBool::new(false);

/// True when the calling thread is certainly not attached to the main
/// interpreter; false when it may be (the full check then answers).
#[inline]
pub(super) fn certainly_not_held() -> bool {
    let locked = LOCKED.load(Relaxed);
    // SAFETY: a non-NULL `LOCKED` is the confirmed `locked` field of the main
    // GIL, in libpython's static memory (`GilWords`). CPython stores it
    // atomically; this is an atomic load of the same word.
    !locked.is_null() && unsafe { (*locked).load(Relaxed) } != 1
}

/// Confirms the GIL's place the first time a thread is found attached to
/// the main interpreter. One relaxed load once tried.
#[inline]
pub(super) fn confirm_once(main: *mut PyInterpreterState, tstate: *mut PyThreadState) {
    if !TRIED.load(Relaxed) {
        confirm(main, tstate);
    }
}

/// # The caller
/// is attached to the main interpreter `main` with `tstate`: it holds the
/// main GIL (GIL builds; free-threaded shims find no words), which also
/// serialises calls here.
#[cold]
fn confirm(main: *mut PyInterpreterState, tstate: *mut PyThreadState) {
    TRIED.store(true, Relaxed);
    let Some(words) = super::attached::main_gil_words(main) else {
        return;
    };
    if !words.locked.is_aligned() || !words.last_holder.is_aligned() {
        return;
    }
    // SAFETY: the shim's words lie in libpython's static memory (its
    // promise, `GilWords`), aligned as checked above. CPython writes both
    // fields atomically; they are read atomically here.
    let (locked, last_holder) = unsafe { (&*words.locked, &*words.last_holder) };
    if locked.load(Relaxed) == 1 && last_holder.load(Relaxed) == tstate {
        LOCKED.store(words.locked.cast_mut(), Relaxed);
    }
}

/// The confirmed `locked` word, for the layout test
/// (`pyalloc_testing_main_gil_locked`); NULL when there is none.
#[cfg(feature = "testing")]
pub(crate) fn confirmed_locked() -> *const AtomicI32 {
    LOCKED.load(Relaxed)
}
