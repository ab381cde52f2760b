//! CPython 3.13 and newer, free-threaded builds included: the calling
//! thread's attached thread state is a thread-local, read by the public
//! `PyThreadState_GetUnchecked()`: NULL on a thread that is not attached,
//! before `Py_Initialize` and after `Py_FinalizeEx`. In a free-threaded build
//! several threads are attached at once, each may call `PyMem_*` (mimalloc
//! backs it, thread-safe), and a thread that is not attached may not.

use pyo3_ffi::PyThreadState;

use super::main_interpreter::GilWords;
use super::token::MainGil;

extern "C" {
    fn PyThreadState_GetUnchecked() -> *mut PyThreadState;
}

/// `thread_state` answers a state of any interpreter.
pub(super) const MAIN_ONLY: bool = false;

/// The thread state the calling thread is attached with, or NULL.
#[inline]
pub(super) fn thread_state() -> *mut PyThreadState {
    // SAFETY: reads a thread-local; callable on any thread, with or without
    // an interpreter.
    unsafe { PyThreadState_GetUnchecked() }
}

/// The start of `_Py_DebugOffsets` (3.13: `Include/internal/pycore_runtime.h`;
/// 3.14 and 3.15: `Include/internal/pycore_debug_offsets.h`), the first
/// member of `_PyRuntime`: offsets that CPython publishes for out-of-process
/// debuggers, stable across a minor version's patch releases but not between
/// minor versions. Up to the GIL's fields the versions differ only in how many
/// interpreter-state offsets come before them (`FIELDS`): 9 on 3.13 (`id` to
/// `builtins`, then `ceval_gil` and `gil_runtime_state`), 10 on 3.14 and
/// 3.15 (`threads_main` added after `threads_head`).
#[cfg(not(any(pyalloc_py316, pyalloc_free_threaded, windows)))]
#[repr(C)]
struct DebugOffsets<const FIELDS: usize> {
    cookie: [u8; 8],
    version: u64,
    free_threaded: u64,
    runtime_state: [u64; 3],
    interpreter_size: u64,
    interpreter_fields: [u64; FIELDS],
    gil_runtime_state_enabled: u64,
    gil_runtime_state_locked: u64,
    gil_runtime_state_holder: u64,
}

/// The table's start as this build's CPython lays it out, and the minor
/// versions (`PY_VERSION_HEX >> 16`) whose tables have that layout.
#[cfg(not(any(pyalloc_py314, pyalloc_free_threaded, windows)))]
type DebugOffsetsPrefix = DebugOffsets<9>;
#[cfg(not(any(pyalloc_py314, pyalloc_free_threaded, windows)))]
const KNOWN_VERSIONS: [u64; 1] = [0x030d];
#[cfg(all(pyalloc_py314, not(any(pyalloc_py316, pyalloc_free_threaded, windows))))]
type DebugOffsetsPrefix = DebugOffsets<10>;
#[cfg(all(pyalloc_py314, not(any(pyalloc_py316, pyalloc_free_threaded, windows))))]
const KNOWN_VERSIONS: [u64; 2] = [0x030e, 0x030f];

#[cfg(not(any(pyalloc_py316, pyalloc_free_threaded, windows)))]
extern "C" {
    /// Exported by libpython; declared as its leading `_Py_DebugOffsets`
    /// only, which is all that is read. `mut`: CPython writes it (it copies
    /// the whole runtime state in on each `Py_Initialize`).
    static mut _PyRuntime: DebugOffsetsPrefix;
}

/// The main GIL's `locked` and `last_holder` in the main interpreter's
/// state, where `_PyRuntime.debug_offsets` places them, when it is a table
/// whose layout this build knows (cookie and version: 3.13, or 3.14 and
/// 3.15, a release candidate or final: the layout is frozen from the first
/// candidate on) for a GIL build and both fields lie inside the interpreter
/// state (which is inside `_PyRuntime`).
#[cfg(not(any(pyalloc_py316, pyalloc_free_threaded, windows)))]
pub(super) fn main_gil_words(_gil: &MainGil) -> Option<GilWords> {
    // SAFETY: `_PyRuntime` is a static of libpython, initialised at load
    // time, and on 3.13-3.15 it begins with this table (the version is
    // checked below before any offset is used; the prefix read is far
    // smaller than `_PyRuntime` on any version). Copied out, never
    // referenced: CPython rewrites it (with the same values) on each
    // `Py_Initialize`, which the caller's thread, holding the GIL, is not in.
    let table = unsafe { core::ptr::addr_of!(_PyRuntime).read() };
    let release_level = table.version & 0xf0;
    let known = KNOWN_VERSIONS.contains(&(table.version >> 16)) && release_level >= 0xc0;
    if &table.cookie != b"xdebugpy" || !known || table.free_threaded != 0 {
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
    let main = super::main_interpreter::main_interpreter().cast::<u8>();
    Some(GilWords {
        locked: main.wrapping_add(usize::try_from(locked).ok()?).cast(),
        last_holder: main.wrapping_add(usize::try_from(last_holder).ok()?).cast(),
    })
}

/// Versions newer than 3.15, whose table this code has not seen,
/// free-threaded builds (no GIL to read), and Windows: no quick "no". On
/// Windows `_PyRuntime` is data in `python3XY.dll`, which a Rust `extern`
/// static reaches only through an import declared with the DLL's name
/// (pyo3-ffi's `link(name = "pythonXY")` with its build script's renaming);
/// pyalloc reads no data of libpython there, so it links against what
/// pyo3-ffi links and nothing more.
#[cfg(any(pyalloc_py316, pyalloc_free_threaded, windows))]
#[inline]
pub(super) fn main_gil_words(_gil: &MainGil) -> Option<GilWords> {
    None
}
