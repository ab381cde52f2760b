//! CPython 3.13 and newer, free-threaded builds included: the calling
//! thread's attached thread state is a thread-local, read by the public
//! `PyThreadState_GetUnchecked()`: NULL on a thread that is not attached,
//! before `Py_Initialize` and after `Py_FinalizeEx`. In a free-threaded build
//! several threads are attached at once, each may call `PyMem_*` (mimalloc
//! backs it, thread-safe), and a thread that is not attached may not.

use pyo3_ffi::{PyInterpreterState, PyThreadState};

use super::main_gil::GilWords;

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

/// The start of 3.13's `_Py_DebugOffsets` (`Include/internal/pycore_runtime.h`),
/// the first member of `_PyRuntime`: offsets that CPython publishes for
/// out-of-process debuggers, stable across 3.13's patch releases (its layout
/// changes between minor versions, so 3.14 and newer are not read).
#[cfg(not(any(pyalloc_py314, pyalloc_free_threaded)))]
#[repr(C)]
struct DebugOffsets313 {
    cookie: [u8; 8],
    version: u64,
    free_threaded: u64,
    runtime_state: [u64; 3],
    interpreter_size: u64,
    /// `id` to `builtins`, then `ceval_gil` and `gil_runtime_state`.
    interpreter_fields: [u64; 9],
    gil_runtime_state_enabled: u64,
    gil_runtime_state_locked: u64,
    gil_runtime_state_holder: u64,
}

#[cfg(not(any(pyalloc_py314, pyalloc_free_threaded)))]
extern "C" {
    /// Exported by libpython; declared as its leading `_Py_DebugOffsets`
    /// only, which is all that is read. `mut`: CPython writes it (it copies
    /// the whole runtime state in on each `Py_Initialize`).
    static mut _PyRuntime: DebugOffsets313;
}

/// The main GIL's `locked` and `last_holder` in the main interpreter's
/// state, where `_PyRuntime.debug_offsets` places them, when it is 3.13's
/// table (cookie and version, a release candidate or final: the layout is
/// frozen from the first candidate on) for a GIL build and both fields lie
/// inside the interpreter state (which is inside `_PyRuntime`).
#[cfg(not(any(pyalloc_py314, pyalloc_free_threaded)))]
pub(super) fn main_gil_words(main: *mut PyInterpreterState) -> Option<GilWords> {
    // SAFETY: `_PyRuntime` is a static of libpython, initialised at load
    // time, and on 3.13 it begins with this table. Copied out, never
    // referenced: CPython rewrites it (with the same values) on each
    // `Py_Initialize`, which the caller's thread, holding the GIL, is not in.
    let table = unsafe { core::ptr::addr_of!(_PyRuntime).read() };
    let release_level = table.version & 0xf0;
    let is_313 = table.version >> 16 == 0x030d && release_level >= 0xc0;
    if &table.cookie != b"xdebugpy" || !is_313 || table.free_threaded != 0 {
        return None;
    }
    let (locked, last_holder) = (table.gil_runtime_state_locked, table.gil_runtime_state_holder);
    let inside = |offset: u64, size: u64| {
        offset
            .checked_add(size)
            .is_some_and(|end| end <= table.interpreter_size)
    };
    if !inside(locked, 4) || !inside(last_holder, 8) {
        return None;
    }
    let main = main.cast::<u8>();
    Some(GilWords {
        locked: main.wrapping_add(usize::try_from(locked).ok()?).cast(),
        last_holder: main.wrapping_add(usize::try_from(last_holder).ok()?).cast(),
    })
}

/// 3.14 and newer (not runnable here) and free-threaded builds (no GIL to
/// read): no quick "no".
#[cfg(any(pyalloc_py314, pyalloc_free_threaded))]
#[inline]
pub(super) fn main_gil_words(_main: *mut PyInterpreterState) -> Option<GilWords> {
    None
}
