//! The CPython-version shims. On every allocation pyalloc asks the
//! interpreter one question: which interpreter, if any, is the calling thread
//! attached to (holding its GIL; in a free-threaded build, attached)? Each
//! CPython version answers it differently, and every version-specific line is
//! in this folder: `attached_3_11.rs`, `attached_3_12.rs`,
//! `attached_3_13.rs` (3.13 and newer, free-threaded builds too), chosen by
//! the cfgs that `build.rs` derives from pyo3-ffi's interpreter config.
//! Allocation asks a cheaper question first (`main_gil.rs`): does any thread
//! hold the main GIL? While none does, the answer is "not attached" without
//! a call into libpython. `main_interpreter.rs` holds where the main
//! interpreter and its GIL's words are; `gil_3_11_3_12.rs` is the GIL's
//! struct as 3.11 and 3.12 share it.
//!
//! A false "attached to the main interpreter" would call `PyMem_*` without
//! the GIL and corrupt the heap; a false "not attached" only sends a block to
//! the private family. So every answer here errs towards "not attached".
//!
//! The answer carries the proof: [`MainGil`] and [`Attached`] (`token.rs`)
//! are made here and nowhere else, and every function that needs the GIL takes one, so the
//! GIL argument is made once, in `attached_interpreter`. Asking changes
//! nothing; confirming the quick read is a separate step
//! (`confirm_quick_read`) that the allocation path takes.

use core::ffi::c_int;

use pyo3_ffi::{PyInterpreterState, PyThreadState};

#[cfg_attr(not(pyalloc_py312), path = "attached_3_11.rs")]
#[cfg_attr(all(pyalloc_py312, not(pyalloc_py313)), path = "attached_3_12.rs")]
#[cfg_attr(pyalloc_py313, path = "attached_3_13.rs")]
mod attached;
#[cfg(not(pyalloc_py313))]
mod gil_3_11_3_12;
mod main_gil;
mod main_interpreter;
mod token;

use main_interpreter::main_interpreter;
pub(crate) use token::{Attached, MainGil};

extern "C" {
    #[cfg(pyalloc_py316)]
    fn PyThreadState_GetInterpreter(tstate: *mut PyThreadState) -> *mut PyInterpreterState;
    fn Py_AtExit(func: extern "C" fn()) -> c_int;
    fn Py_IsInitialized() -> c_int;
}

/// Whether an interpreter is initialised and not yet finalising
/// (`Py_IsInitialized`, which `Py_FinalizeEx` clears first). A plain read of
/// one runtime word, callable on any thread at any time; racy by nature, so
/// used for diagnostics only, never to decide a family.
pub(crate) fn interpreter_running() -> bool {
    // SAFETY: reads `_PyRuntime.initialized`; needs no GIL or interpreter.
    unsafe { Py_IsInitialized() != 0 }
}

/// The interpreter the calling thread is attached to, with the proof.
pub(crate) enum Interpreter {
    /// The main interpreter: `PyMem_*` reaches the main heap.
    Main(MainGil),
    /// A subinterpreter, whose heap may be its own (3.12+, own obmalloc).
    Subinterpreter(Attached),
    /// None: the GIL is released, the thread never had a thread state, or
    /// there is no interpreter (before `Py_Initialize`, after `Py_FinalizeEx`).
    None,
}

/// Which interpreter the calling thread is attached to; changes nothing.
/// Never uses `PyGILState_Check`, which answers 1 before `Py_Initialize`
/// and, once a subinterpreter has existed, on every thread.
#[inline]
pub(crate) fn attached_interpreter() -> Interpreter {
    let tstate = attached::thread_state();
    if tstate.is_null() {
        return Interpreter::None;
    }
    if attached::MAIN_ONLY || interpreter_of(tstate) == main_interpreter() {
        // SAFETY: the version shim found this thread attached with `tstate`
        // (see `attached::thread_state`), to the main interpreter; nothing
        // inside pyalloc detaches it.
        Interpreter::Main(unsafe { MainGil::new_unchecked(tstate) })
    } else {
        // SAFETY: as above, to another interpreter.
        Interpreter::Subinterpreter(unsafe { Attached::new_unchecked(tstate) })
    }
}

/// Confirms where the main GIL's `locked` word is, the first times a thread
/// holding the main GIL allocates (`main_gil.rs`): one relaxed load once
/// confirmed or given up.
#[inline]
pub(crate) fn confirm_quick_read(gil: &MainGil) {
    main_gil::confirm_once(gil);
}

/// True when the calling thread is certainly not attached to the main
/// interpreter, known without a call into libpython (no thread holds the
/// main GIL, see `main_gil.rs`); false when it may be, and
/// `attached_interpreter` must answer. For allocation only: it does not
/// tell a subinterpreter from no interpreter.
#[inline]
pub(crate) fn certainly_not_attached_to_main() -> bool {
    main_gil::certainly_not_held()
}

/// The leading fields of CPython's `struct _ts` (`Include/cpython/pystate.h`:
/// `prev`, `next`, `interp`), the same from 3.11 to 3.15 (free-threaded
/// builds too: no field before them depends on the build); `c_tests/layout.c`
/// checks the offset against each interpreter's own header. Reading `interp`
/// directly saves a call on every allocation.
#[cfg(not(pyalloc_py316))]
#[repr(C)]
struct ThreadStateHead {
    prev: *mut PyThreadState,
    next: *mut PyThreadState,
    interp: *mut PyInterpreterState,
}

/// The offsets pyalloc reads, for the layout test (`pyalloc_testing_layout`).
#[cfg(all(feature = "testing", not(pyalloc_py316)))]
pub(crate) const INTERP_OFFSET: usize = core::mem::offset_of!(ThreadStateHead, interp);
#[cfg(all(feature = "testing", pyalloc_py316))]
pub(crate) const INTERP_OFFSET: usize = 0;
#[cfg(all(feature = "testing", not(pyalloc_py312)))]
pub(crate) use attached::THREAD_ID_OFFSET;
#[cfg(all(feature = "testing", pyalloc_py312))]
pub(crate) const THREAD_ID_OFFSET: usize = 0;

/// The confirmed `locked` word of the main GIL (NULL when there is none)
/// and how many allocations it answered, for the tests.
#[cfg(feature = "testing")]
pub(crate) fn main_gil_testing_state() -> (*const core::ffi::c_int, u64) {
    let (locked, answers) = main_gil::testing_state();
    (locked.cast(), answers)
}

#[cfg(not(pyalloc_py316))]
#[inline]
fn interpreter_of(tstate: *mut PyThreadState) -> *mut PyInterpreterState {
    // SAFETY: `tstate` is the calling thread's attached thread state (see
    // `attached::thread_state`), alive while it stays attached, and its
    // layout begins with `ThreadStateHead` on 3.11-3.15 (the headers say so,
    // and `c_tests/layout.c` checks it on each of them).
    unsafe { (*tstate.cast::<ThreadStateHead>()).interp }
}

/// Versions newer than 3.15, whose headers this code has not seen: ask
/// through the public function rather than trust a layout not checked.
#[cfg(pyalloc_py316)]
#[inline]
fn interpreter_of(tstate: *mut PyThreadState) -> *mut PyInterpreterState {
    // SAFETY: `tstate` is the calling thread's attached thread state; the
    // function only reads its `interp` field.
    unsafe { PyThreadState_GetInterpreter(tstate) }
}

/// Registers `func` to run at the end of `Py_FinalizeEx`; false when
/// CPython's table of such functions (32 entries) is full.
///
/// # Safety
/// `func`'s code stays loaded for the rest of the process (a `dlclose`
/// would leave CPython calling unmapped memory): `sys::pin_this_object`.
pub(crate) unsafe fn at_exit(_gil: &MainGil, func: extern "C" fn()) -> bool {
    // SAFETY: the token proves the main interpreter's GIL, which serialises
    // the call with every other `Py_AtExit` caller on 3.11 (3.12+ lock);
    // `func` stays loaded (the caller's promise).
    unsafe { Py_AtExit(func) == 0 }
}
