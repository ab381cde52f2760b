//! CPython 3.12: the calling thread's attached thread state is a thread-local
//! (`_Py_tss_tstate`), read by `_PyThreadState_UncheckedGet()`: NULL on a
//! thread that holds no GIL, before `Py_Initialize` and after `Py_FinalizeEx`.

use core::ffi::c_ulong;

use pyo3_ffi::{PyInterpreterState, PyThreadState};

use super::main_gil::GilWords;

extern "C" {
    fn _PyThreadState_UncheckedGet() -> *mut PyThreadState;
    fn _PyEval_GetSwitchInterval() -> c_ulong;
}

/// The thread state the calling thread is attached with, or NULL.
#[inline]
pub(super) fn thread_state() -> *mut PyThreadState {
    // SAFETY: reads a thread-local; callable on any thread, with or without
    // an interpreter.
    unsafe { _PyThreadState_UncheckedGet() }
}

/// Where 3.12's `PyInterpreterState._gil` keeps `interval`, `last_holder`
/// and `locked` (`Include/internal/pycore_interp.h`, `pycore_gil.h`; the
/// main interpreter always has its own GIL) in a release build on x86-64 (a
/// debug build places them alike): 3.12 publishes no offsets of its own.
/// `c_tests/layout.c` compares them with the interpreter's header. The main
/// interpreter's state is hundreds of KiB, inside `_PyRuntime`.
const INTERVAL: usize = 1040;
const LAST_HOLDER: usize = 1048;
const LOCKED: usize = 1056;

/// The main GIL's `locked` and `last_holder`, when the switch interval the
/// interpreter reports is where this layout puts it (on x86-64 only).
///
/// The caller holds the main GIL, under which the interval is written.
#[inline]
pub(super) fn main_gil_words(main: *mut PyInterpreterState) -> Option<GilWords> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    let main = main.cast::<u8>();
    // SAFETY: inside the main interpreter's state (see above), 8-aligned
    // (the state is); the caller holds the main GIL, under which
    // `sys.setswitchinterval` writes it.
    let interval = unsafe { main.add(INTERVAL).cast::<c_ulong>().read() };
    // SAFETY: a plain getter, called with the GIL held.
    if interval != unsafe { _PyEval_GetSwitchInterval() } {
        return None;
    }
    Some(GilWords {
        locked: main.wrapping_add(LOCKED).cast(),
        last_holder: main.wrapping_add(LAST_HOLDER).cast(),
    })
}
