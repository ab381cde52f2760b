//! The CPython-version shims: the one question pyalloc asks the interpreter on
//! every call ("does this thread hold the main interpreter's GIL?") and the
//! few entry points whose declaration is not the same across pyo3-ffi 0.23 to
//! 0.30. Everything version-specific lives in this file.
//!
//! A false "no" only sends a block to the private family; a false "yes" would
//! call `PyMem_*` without the GIL and corrupt pymalloc. So every answer here
//! errs towards "no".

use core::ffi::{c_int, c_void};

use pyo3_ffi::{PyInterpreterState, PyThreadState};

extern "C" {
    /// 3.9 to 3.11: the thread state of the GIL holder of the whole process.
    /// 3.12: the calling thread's attached thread state (a thread-local).
    #[cfg(not(pyalloc_py313))]
    fn _PyThreadState_UncheckedGet() -> *mut PyThreadState;
    /// 3.13+: the calling thread's attached thread state, or NULL.
    #[cfg(pyalloc_py313)]
    fn PyThreadState_GetUnchecked() -> *mut PyThreadState;
    /// The thread state that the GILState API has bound to this OS thread.
    #[cfg(not(pyalloc_py312))]
    fn PyGILState_GetThisThreadState() -> *mut PyThreadState;
    fn PyInterpreterState_Main() -> *mut PyInterpreterState;
    fn Py_IsInitialized() -> c_int;
    fn Py_AddPendingCall(func: extern "C" fn(*mut c_void) -> c_int, arg: *mut c_void) -> c_int;
    fn Py_AtExit(func: extern "C" fn()) -> c_int;
}

/// The leading fields of CPython's `struct _ts`, which are the same from 3.9
/// to 3.13 (`Include/cpython/pystate.h`: `prev`, `next`, `interp`). Reading
/// `interp` directly saves a call to `PyThreadState_GetInterpreter`.
#[repr(C)]
struct ThreadStateHead {
    prev: *mut c_void,
    next: *mut c_void,
    interp: *mut PyInterpreterState,
}

/// Whether the calling thread holds the GIL of the main interpreter, and so may
/// call `PyMem_*` on the main interpreter's heap.
///
/// Never uses `PyGILState_Check`, which answers 1 before `Py_Initialize` and,
/// on 3.9-3.11, for every thread once a subinterpreter has existed.
/// Subinterpreters answer "no" on purpose: from 3.12 one with its own GIL has
/// its own obmalloc, and one sharing the main GIL is rare enough not to be
/// worth a second family.
#[inline]
pub(crate) fn holds_main_gil() -> bool {
    let tstate = attached_thread_state();
    if tstate.is_null() {
        return false;
    }
    // SAFETY: `tstate` is the calling thread's own attached thread state, so it
    // stays alive while this thread holds it, and its layout begins with
    // `ThreadStateHead` on every supported version (see above).
    unsafe { (*tstate.cast::<ThreadStateHead>()).interp == main_interpreter() }
}

/// 3.11+: the main interpreter is a static inside `_PyRuntime`
/// (`_main_interpreter`), so its address never changes, not even across
/// `Py_FinalizeEx` and a new `Py_Initialize`: cached after the first call.
/// (Reproduced here on 3.11-3.13: the same address over three init/finalize
/// cycles, a fixed offset into `_PyRuntime`.)
#[cfg(pyalloc_py311)]
#[inline]
fn main_interpreter() -> *mut PyInterpreterState {
    use core::sync::atomic::{AtomicPtr, Ordering::Relaxed};
    static MAIN: AtomicPtr<PyInterpreterState> = AtomicPtr::new(core::ptr::null_mut());
    let cached = MAIN.load(Relaxed);
    if !cached.is_null() {
        return cached;
    }
    // SAFETY: only reads the runtime's pointer; callable at any time.
    let main = unsafe { PyInterpreterState_Main() };
    MAIN.store(main, Relaxed);
    main
}

/// 3.9-3.10: the main interpreter is allocated by each `Py_Initialize`, so it
/// is asked every time (a stale address could match a later subinterpreter).
#[cfg(not(pyalloc_py311))]
#[inline]
fn main_interpreter() -> *mut PyInterpreterState {
    // SAFETY: only reads the runtime's pointer; callable at any time.
    unsafe { PyInterpreterState_Main() }
}

/// 3.12+: the attached thread state is a thread-local, NULL on a thread that
/// holds no GIL (and before init and after finalization).
#[cfg(pyalloc_py312)]
#[inline]
fn attached_thread_state() -> *mut PyThreadState {
    // SAFETY: both functions only read a thread-local and may be called on any
    // thread, with or without an interpreter.
    unsafe {
        #[cfg(pyalloc_py313)]
        return PyThreadState_GetUnchecked();
        #[cfg(not(pyalloc_py313))]
        return _PyThreadState_UncheckedGet();
    }
}

/// 3.9-3.11: `_PyThreadState_UncheckedGet` is the process's GIL holder,
/// non-NULL on a thread that holds nothing; it is this thread's only when it
/// is also the thread state the GILState API bound to this thread.
#[cfg(not(pyalloc_py312))]
#[inline]
fn attached_thread_state() -> *mut PyThreadState {
    // SAFETY: `_PyThreadState_UncheckedGet` is an atomic read of the runtime's
    // current thread state; `PyGILState_GetThisThreadState` reads a TSS key and
    // returns NULL before the GILState API is initialised. Neither needs the
    // GIL nor an initialised interpreter.
    unsafe {
        let holder = _PyThreadState_UncheckedGet();
        if !holder.is_null() && holder == PyGILState_GetThisThreadState() {
            holder
        } else {
            core::ptr::null_mut()
        }
    }
}

/// Whether an interpreter is running: `false` before `Py_Initialize` and from
/// the start of `Py_FinalizeEx`.
pub(crate) fn is_initialized() -> bool {
    // SAFETY: reads one runtime flag; callable at any time from any thread.
    unsafe { Py_IsInitialized() != 0 }
}

/// Schedules `func` to run on the main interpreter's main thread with the GIL
/// held. Returns false when CPython's pending-call queue is full.
pub(crate) fn add_pending_call(func: extern "C" fn(*mut c_void) -> c_int) -> bool {
    // SAFETY: `Py_AddPendingCall` is documented as callable from any thread
    // without the GIL; callers check `is_initialized` first, since before
    // initialisation there is no interpreter to queue on.
    unsafe { Py_AddPendingCall(func, core::ptr::null_mut()) == 0 }
}

/// Registers `func` to run at the end of `Py_FinalizeEx`. Call with the GIL.
pub(crate) fn at_exit(func: extern "C" fn()) -> bool {
    // SAFETY: the caller holds the main interpreter's GIL, which serialises
    // this with every other `Py_AtExit` caller on 3.9-3.11 (3.12+ locks).
    unsafe { Py_AtExit(func) == 0 }
}
