//! CPython 3.11: which thread state the calling thread holds the main GIL
//! with.
//!
//! `_PyThreadState_UncheckedGet()` is the GIL holder of the whole process, not
//! the caller's. 3.11 records a state's thread in two places, neither exact
//! on its own:
//!
//! - `PyGILState_GetThisThreadState()`, the *slot*: the first state made on
//!   (or by) this thread, bound to it by the GILState API. A state deleted
//!   from another thread leaves its address there, where a new one can
//!   reuse it.
//! - `tstate->thread_id`: `pthread_self()` of the thread that made the state
//!   (threading's threads overwrite it with their own as they start,
//!   `thread_run` in `Modules/_threadmodule.c`).
//!
//! The caller holds the main GIL when the holder is a main-interpreter state
//! it made itself and either
//! - the holder is its slot (threading's threads, `PyGILState_Ensure`,
//!   `PyThreadState_New` on a thread with no state, the main thread), or
//! - its slot is another interpreter's state and the holder is a second
//!   state it made on itself for the main interpreter (several interpreters
//!   on one thread, which CPython allows).
//!
//! That refuses what CPython's debug build refuses (a second state in the
//! interpreter of the thread's bound state) and states made by a thread with
//! a live main-interpreter state of its own for another thread to attach.
//! What it cannot tell: a main-interpreter state made by a thread whose slot
//! is empty, stale (its own state deleted from another thread), a
//! subinterpreter's, or that very state, then attached by another thread (or
//! a maker that exited and whose thread id a new thread reuses). No field of a 3.11 state records who attached it, so that
//! maker is taken for the holder; pyalloc's rule (crate docs, Limits;
//! `pyalloc.h`) forbids the pattern. A holder in a
//! subinterpreter counts as attached to none: 3.11 has one obmalloc, so
//! queueing a block for the main interpreter is always sound there, and
//! CPython itself attaches a subinterpreter's head state from any thread
//! (`_xxsubinterpreters`).

use core::ffi::{c_int, c_ulong, c_void};
use core::ptr::addr_of;

use pyo3_ffi::PyThreadState;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
use super::gil_3_11_3_12::{self, GilPrefix};
use super::main_interpreter::{main_interpreter, GilWords};
use super::token::MainGil;

extern "C" {
    fn _PyThreadState_UncheckedGet() -> *mut PyThreadState;
    fn PyGILState_GetThisThreadState() -> *mut PyThreadState;
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
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
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

/// Elsewhere the call: `pthread_self()` (aarch64 Linux, macOS) or
/// `GetCurrentThreadId()` (Windows), as CPython computes it.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")))]
#[inline]
fn this_thread() -> c_ulong {
    crate::sys::thread_ident()
}

/// `thread_state` answers main-interpreter states only (it compared the
/// holder's interpreter itself).
pub(super) const MAIN_ONLY: bool = true;

/// The main-interpreter thread state the calling thread holds the GIL with,
/// or NULL (also when it holds a subinterpreter's).
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
    let slot = unsafe { PyGILState_GetThisThreadState() };
    let main = main_interpreter();
    if holder == slot {
        // The common case: the holder is the caller's own bound state, which
        // another thread deletes only when it clears an interpreter's or the
        // runtime's states (`Py_FinalizeEx`, `PyInterpreterState_Clear`) or
        // breaks pyalloc's rule; the block is a small RawMalloc one, still
        // mapped. A slot left stale so and reused by a state that another
        // thread made holds that thread's id.
        // SAFETY: as above.
        let (interp, creator) = unsafe {
            (
                field(holder, |state| addr_of!((*state).interp)),
                field(holder, |state| addr_of!((*state).thread_id)),
            )
        };
        return if interp == main.cast() && creator == this_thread() {
            holder
        } else {
            core::ptr::null_mut()
        };
    }
    // Only a thread whose bound state is another interpreter's may hold the
    // main GIL with a second state of its own.
    // SAFETY: the slot is this thread's own bound state; only a thread
    // breaking pyalloc's rule deletes it from elsewhere, and then the read is
    // of a small RawMalloc block, still mapped (see above).
    if slot.is_null() || unsafe { field(slot, |state| addr_of!((*state).interp)) } == main.cast() {
        return core::ptr::null_mut();
    }
    // SAFETY: `holder` was the GIL holder a moment ago. If the caller holds
    // the GIL, it is the caller's own attached state, alive and unchanged.
    // Otherwise it is another thread's, which may release the GIL and delete
    // it meanwhile, so the reads are volatile and nothing is concluded from
    // them until the holder is read again: a false "yes" would need its
    // block freed, reused for data that holds the caller's `pthread_self()`
    // at `thread_id` and the main interpreter at `interp`, and a new state
    // attached at the same address, between two loads.
    let (interp, creator) = unsafe {
        (
            field(holder, |state| addr_of!((*state).interp)),
            field(holder, |state| addr_of!((*state).thread_id)),
        )
    };
    // While the caller holds the GIL nobody else changes the holder, so a
    // holder that changed in between was not the caller's.
    // SAFETY: as the first read.
    if interp == main.cast() && creator == this_thread() && unsafe { _PyThreadState_UncheckedGet() } == holder
    {
        holder
    } else {
        core::ptr::null_mut()
    }
}

/// A volatile read of one field of a 3.11 thread state.
///
/// # Safety
/// `state` points to memory readable for a `ThreadState311` (a live state,
/// or the mapped block of one just freed).
#[inline]
unsafe fn field<T: Copy>(state: *mut PyThreadState, place: impl Fn(*const ThreadState311) -> *const T) -> T {
    // SAFETY: as the caller promises; the field lies inside the struct.
    unsafe { place(state.cast::<ThreadState311>()).read_volatile() }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
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
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
const GIL: usize = 360;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
const RUNTIME_PREFIX: usize = GIL + core::mem::size_of::<GilPrefix>();

/// The main GIL's `locked` and `last_holder` (`gil_3_11_3_12::words`).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[inline]
pub(super) fn main_gil_words(gil: &MainGil) -> Option<GilWords> {
    // SAFETY: only takes the address of libpython's exported static (safe
    // since Rust 1.82; the crate's oldest supported Rust, 1.79, wants the
    // block).
    #[allow(unused_unsafe)]
    let runtime = unsafe { core::ptr::addr_of!(_PyRuntime) }.cast::<u8>();
    // SAFETY: the struct lies inside the declared prefix, 8-aligned (the
    // static is).
    unsafe { gil_3_11_3_12::words(gil, runtime.wrapping_add(GIL)) }
}

/// Elsewhere the offset above is unchecked (`gil_3_11_3_12::words`): no
/// quick read, the full check answers.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
#[inline]
pub(super) fn main_gil_words(_gil: &MainGil) -> Option<GilWords> {
    None
}
