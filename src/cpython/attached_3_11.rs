//! CPython 3.11: which thread state the calling thread holds the GIL with.
//!
//! `_PyThreadState_UncheckedGet()` is the GIL holder of the whole process, not
//! the caller's. 3.11 records one thread per state: `tstate->thread_id`,
//! `PyThread_get_thread_ident()` (that is, `pthread_self()`) of the thread
//! that created it; threading's threads overwrite it with their own id when
//! they start (`thread_run`, `Modules/_threadmodule.c`). So the caller holds
//! the GIL when the holder's `thread_id` is the caller's own id, provided a
//! state is attached only by the thread that created it. Every way CPython
//! itself attaches states keeps that rule (threading's threads,
//! `PyGILState_Ensure`, `Py_NewInterpreter`, `PyThreadState_New` on the
//! thread itself, also for states in several interpreters on one thread);
//! a state made by one thread and attached by another breaks it, and then
//! the creating thread is taken for the holder. No field of a 3.11 thread
//! state records which thread *attached* it, so that case cannot be told;
//! the rule is stated in the crate docs, `pyalloc.h` and the README.
//!
//! The GILState slot (`PyGILState_GetThisThreadState()`) is not consulted:
//! it holds one state per thread, so a thread attached with a second state
//! of its own (another interpreter's first) would be refused, and a state
//! deleted from another thread leaves its address there, where a new state
//! can reuse it.

use core::ffi::{c_int, c_ulong, c_void};

use pyo3_ffi::{PyInterpreterState, PyThreadState};

use super::gil_3_11::{self, GilPrefix};
use super::main_gil::GilWords;

extern "C" {
    fn _PyThreadState_UncheckedGet() -> *mut PyThreadState;
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
    // SAFETY: `holder` was the GIL holder's state a moment ago, a
    // `PyMem_RawCalloc` block of a few hundred bytes that CPython frees only
    // after it stops being the holder. If the caller holds the GIL, it is the
    // caller's own attached state and stays alive and unchanged. Otherwise its
    // thread may have released the GIL and deleted it since: the read is
    // volatile (no assumption is drawn from it), the block is still mapped
    // (no allocator unmaps a freed block that small; pymalloc never serves
    // the raw domain), and it holds the id of the thread that made it or of
    // whichever thread made a state there since, never the caller's, which
    // is inside this function and makes none.
    let creator =
        unsafe { core::ptr::addr_of!((*holder.cast::<ThreadState311>()).thread_id).read_volatile() };
    // The holder is re-read: while the caller holds the GIL nobody else can
    // change it, so a holder that changed in between was not the caller's.
    // SAFETY: as above.
    if creator == this_thread() && unsafe { _PyThreadState_UncheckedGet() } == holder {
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
