//! CPython 3.12: the calling thread's attached thread state is a thread-local
//! (`_Py_tss_tstate`), read by `_PyThreadState_UncheckedGet()`: NULL on a
//! thread that holds no GIL, before `Py_Initialize` and after `Py_FinalizeEx`.

use pyo3_ffi::{PyInterpreterState, PyThreadState};

use super::main_gil::GilWords;

extern "C" {
    fn _PyThreadState_UncheckedGet() -> *mut PyThreadState;
}

/// The thread state the calling thread is attached with, or NULL.
#[inline]
pub(super) fn thread_state() -> *mut PyThreadState {
    // SAFETY: reads a thread-local; callable on any thread, with or without
    // an interpreter.
    unsafe { _PyThreadState_UncheckedGet() }
}

/// The main GIL's `locked` and `last_holder` in 3.12's `PyInterpreterState`
/// (`_gil.locked`, `_gil.last_holder`, `Include/internal/pycore_interp.h`:
/// the main interpreter always has its own GIL), as the header places them
/// in a release build on x86-64: 3.12 publishes no offsets of its own.
/// `c_tests/layout.c` compares them with the interpreter's header, and
/// `main_gil` uses them only once confirmed. The main interpreter's state
/// (hundreds of KiB, inside `_PyRuntime`) holds both.
#[inline]
pub(super) fn main_gil_words(main: *mut PyInterpreterState) -> Option<GilWords> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    let main = main.cast::<u8>();
    Some(GilWords {
        locked: main.wrapping_add(1056).cast(),
        last_holder: main.wrapping_add(1048).cast(),
    })
}
