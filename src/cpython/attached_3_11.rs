//! CPython 3.11: which thread state the calling thread holds the GIL with.
//!
//! `_PyThreadState_UncheckedGet()` is the GIL holder of the whole process, not
//! the caller's. The caller holds the GIL exactly when that holder is its own
//! thread state, and 3.11 records a state's thread in two places, neither of
//! them exact on its own:
//!
//! - `PyGILState_GetThisThreadState()`: the state the GILState API bound to
//!   this OS thread. A state deleted from another thread leaves its address
//!   here, where a new state can reuse it.
//! - `tstate->thread_id`: the thread that *created* the state. A new state
//!   at a reused address was created by another thread, so checking both
//!   rejects the stale slot.
//!
//! Neither records which thread *attached* a state: `PyThreadState_New` on a
//! thread that has no state binds the new state to the creating thread
//! (changed in 3.12, gh-59956), so if another thread then attaches it, the
//! creating thread is taken for the holder. pyalloc states this as a
//! precondition (README, `pyalloc.h`), as CPython's own `PyGILState_Check`
//! shares the same blind spot.

use core::ffi::{c_int, c_ulong, c_void};

use pyo3_ffi::{PyInterpreterState, PyThreadState};

use super::gil_3_11::{self, GilPrefix};
use super::main_gil::GilWords;

extern "C" {
    fn _PyThreadState_UncheckedGet() -> *mut PyThreadState;
    fn PyGILState_GetThisThreadState() -> *mut PyThreadState;
    #[cfg(not(all(target_arch = "x86_64", target_env = "gnu")))]
    fn pthread_self() -> c_ulong;
}

/// CPython 3.11's `struct _ts` up to `thread_id` (`Include/cpython/pystate.h`);
/// `c_tests/layout.c` checks the offset against the interpreter's header.
#[repr(C)]
pub(crate) struct ThreadState311 {
    prev: *mut c_void,
    next: *mut c_void,
    interp: *mut c_void,
    initialized: c_int,
    is_static: c_int,
    recursion_remaining: c_int,
    recursion_limit: c_int,
    recursion_headroom: c_int,
    tracing: c_int,
    tracing_what: c_int,
    cframe: *mut c_void,
    c_profilefunc: *mut c_void,
    c_tracefunc: *mut c_void,
    c_profileobj: *mut c_void,
    c_traceobj: *mut c_void,
    curexc_type: *mut c_void,
    curexc_value: *mut c_void,
    curexc_traceback: *mut c_void,
    exc_info: *mut c_void,
    dict: *mut c_void,
    gilstate_counter: c_int,
    async_exc: *mut c_void,
    /// `PyThread_get_thread_ident()` of the creating thread: `pthread_self()`.
    thread_id: c_ulong,
}

/// The offset of `thread_id` in 3.11's `struct _ts`, for the layout test.
#[cfg(feature = "testing")]
pub(crate) const THREAD_ID_OFFSET: usize = core::mem::offset_of!(ThreadState311, thread_id);

/// `pthread_self()`, which is what CPython records as `thread_id`. On
/// x86-64 glibc it is the `self` word of the thread control block, at
/// `%fs:0x10` (the `tcbhead_t` layout that glibc's own `pthread_self` and
/// GCC's stack protector rely on): read directly, it costs no call.
#[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
#[inline]
fn this_thread() -> c_ulong {
    let thread: c_ulong;
    // SAFETY: reads one word of the calling thread's control block, which
    // exists for every thread glibc runs; no memory is written.
    unsafe {
        core::arch::asm!("mov {}, fs:[0x10]", out(reg) thread, options(nostack, readonly, preserves_flags, pure))
    };
    thread
}

#[cfg(not(all(target_arch = "x86_64", target_env = "gnu")))]
#[inline]
fn this_thread() -> c_ulong {
    // SAFETY: pthread_self only reads the thread pointer.
    unsafe { pthread_self() }
}

/// The thread state the calling thread holds the GIL with, or NULL.
#[inline]
pub(super) fn thread_state() -> *mut PyThreadState {
    // SAFETY: an atomic read of the runtime's current thread state; needs
    // neither the GIL nor an initialised interpreter.
    let holder = unsafe { _PyThreadState_UncheckedGet() };
    if holder.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: reads a TSS key, NULL before the GILState API is initialised;
    // needs neither the GIL nor an initialised interpreter.
    if holder != unsafe { PyGILState_GetThisThreadState() } {
        return core::ptr::null_mut();
    }
    // SAFETY: `holder` is the GIL holder's thread state, allocated by
    // PyMem_RawMalloc and alive while it holds the GIL. If its thread
    // released the GIL and deleted it since the read above, the field is
    // still readable malloc memory (a state is never unmapped at this
    // size) and holds another thread's id, so the answer is "no" either way.
    let creator = unsafe { (*holder.cast::<ThreadState311>()).thread_id };
    if creator == this_thread() {
        holder
    } else {
        core::ptr::null_mut()
    }
}

extern "C" {
    /// libpython's `_PyRuntimeState` (over 100 KiB), declared as its first
    /// bytes only, so that every read stays inside the declared object.
    /// `mut`: CPython writes it.
    static mut _PyRuntime: [u8; RUNTIME_PREFIX];
}

/// Where 3.11's one GIL, `_PyRuntime.ceval.gil`, starts
/// (`Include/internal/pycore_runtime.h`) in a release build on x86-64 (a
/// debug build places it alike). `c_tests/layout.c` compares the `locked`
/// word pyalloc confirms with the interpreter's header.
const GIL: usize = 360;
const RUNTIME_PREFIX: usize = GIL + core::mem::size_of::<GilPrefix>();

/// The main GIL's `locked` and `last_holder` (`gil_3_11::words`).
///
/// The caller holds the GIL.
#[inline]
pub(super) fn main_gil_words(_main: *mut PyInterpreterState) -> Option<GilWords> {
    // SAFETY: only takes the address of libpython's exported static (safe
    // since Rust 1.82; the crate's oldest supported Rust, 1.79, wants the
    // block).
    #[allow(unused_unsafe)]
    let runtime = unsafe { core::ptr::addr_of!(_PyRuntime) }.cast::<u8>();
    // SAFETY: the struct lies inside the declared prefix, 8-aligned (the
    // static is); the caller holds the GIL.
    unsafe { gil_3_11::words(runtime.wrapping_add(GIL)) }
}
