//! CPython 3.13 and newer, free-threaded builds included: the calling
//! thread's attached thread state is a thread-local, read by the public
//! `PyThreadState_GetUnchecked()`: NULL on a thread that is not attached,
//! before `Py_Initialize` and after `Py_FinalizeEx`. In a free-threaded build
//! several threads are attached at once, each may call `PyMem_*` (mimalloc
//! backs it, thread-safe), and a thread that is not attached may not.

use pyo3_ffi::PyThreadState;

extern "C" {
    fn PyThreadState_GetUnchecked() -> *mut PyThreadState;
}

/// The thread state the calling thread is attached with, or NULL.
#[inline]
pub(super) fn thread_state() -> *mut PyThreadState {
    // SAFETY: reads a thread-local; callable on any thread, with or without
    // an interpreter.
    unsafe { PyThreadState_GetUnchecked() }
}
