//! CPython 3.12: the calling thread's attached thread state is a thread-local
//! (`_Py_tss_tstate`), read by `_PyThreadState_UncheckedGet()`: NULL on a
//! thread that holds no GIL, before `Py_Initialize` and after `Py_FinalizeEx`.

use pyo3_ffi::PyThreadState;

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
