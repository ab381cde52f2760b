//! The main interpreter's static places: its state and its GIL's words.
//! From 3.11 both lie inside `_PyRuntime`, libpython's static memory.

use core::ptr;
use core::sync::atomic::{AtomicI32, AtomicPtr, Ordering::Relaxed};

use pyo3_ffi::{PyInterpreterState, PyThreadState};

extern "C" {
    fn PyInterpreterState_Main() -> *mut PyInterpreterState;
}

/// The main interpreter. From 3.11 it is a static inside `_PyRuntime`
/// (`_main_interpreter`), so its address never changes, not even across
/// `Py_FinalizeEx` and a new `Py_Initialize`: cached once known.
#[inline]
pub(super) fn main_interpreter() -> *mut PyInterpreterState {
    static MAIN: AtomicPtr<PyInterpreterState> = AtomicPtr::new(ptr::null_mut());
    let cached = MAIN.load(Relaxed);
    if !cached.is_null() {
        return cached;
    }
    // SAFETY: only reads the runtime's pointer; callable at any time.
    let main = unsafe { PyInterpreterState_Main() };
    MAIN.store(main, Relaxed);
    main
}

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
