//! CPython 3.12: the calling thread's attached thread state is a thread-local
//! (`_Py_tss_tstate`), read by `_PyThreadState_UncheckedGet()`: NULL on a
//! thread that holds no GIL, before `Py_Initialize` and after `Py_FinalizeEx`.

use pyo3_ffi::PyThreadState;

use super::gil_3_11_3_12;
use super::main_interpreter::{main_interpreter, GilWords};
use super::token::MainGil;

extern "C" {
    fn _PyThreadState_UncheckedGet() -> *mut PyThreadState;
}

/// `thread_state` answers a state of any interpreter.
pub(super) const MAIN_ONLY: bool = false;

/// The thread state the calling thread is attached with, or NULL.
#[inline]
pub(super) fn thread_state() -> *mut PyThreadState {
    // SAFETY: reads a thread-local; callable on any thread, with or without
    // an interpreter.
    unsafe { _PyThreadState_UncheckedGet() }
}

/// Where 3.12's main GIL, `PyInterpreterState._gil`, starts
/// (`Include/internal/pycore_interp.h`; the main interpreter always has its
/// own GIL) in a release build on x86-64 (a debug build places it alike).
/// `c_tests/layout.c` compares the `locked` word pyalloc confirms with the
/// interpreter's header.
const GIL: usize = 1040;

/// The main GIL's `locked` and `last_holder` (`gil_3_11_3_12::words`).
#[inline]
pub(super) fn main_gil_words(gil: &MainGil) -> Option<GilWords> {
    let main = main_interpreter();
    // SAFETY: the main interpreter's state is hundreds of KiB of static
    // memory inside `_PyRuntime`, 8-aligned, with the struct at `GIL`.
    unsafe { gil_3_11_3_12::words(gil, main.cast::<u8>().wrapping_add(GIL)) }
}
