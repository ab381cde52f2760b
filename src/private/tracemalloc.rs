//! Private blocks shown to tracemalloc (CPython 3.15 and later, opt-in):
//! with `PYALLOC_TRACEMALLOC=1` in the environment when the private heap is
//! set up, each private block is registered with
//! `PyTraceMalloc_Track(TRACEMALLOC_DOMAIN, p, size)` when it is made and
//! `PyTraceMalloc_Untrack` before it is freed or resized, so that
//! `tracemalloc.get_traced_memory()` covers worker threads' Rust memory and a
//! snapshot can select it with `tracemalloc.DomainFilter`.
//!
//! Why only from 3.15: up to 3.14 both calls take the GIL
//! (`PyGILState_Ensure`) on a thread without a thread state, which
//! deadlocks a worker whose GIL holder waits for it (CPython gh-155725).
//! 3.15 (gh-155725) takes only tracemalloc's own `tables_lock` (a
//! `PyMutex` locked without detaching), reads `tracing` again under it, and
//! records an empty traceback for a thread with no thread state. The
//! tracer's own allocations go to the raw allocator saved at
//! `tracemalloc.start()` and to libc's `malloc`: C, never this allocator,
//! except through a `PyMem_SetAllocator` hook written in Rust. A per-thread
//! guard turns such a hook's allocation into a block left untraced when
//! pyalloc itself is inside the tracer (this copy); when CPython's own tracer
//! calls the hook holding `tables_lock`, the guard cannot see it and the
//! registration would wait on that lock: such a hook must not allocate
//! through pyalloc while the option is on (crate docs).
//!
//! Fork: a thread inside the tracer holds `tables_lock`, and a child forked
//! then inherits it held, so that the child's first traced allocation (its
//! GIL holder's `PyMem_Malloc`) deadlocks (seen: 1 run in 4 of
//! `c_tests/tracemalloc.c` before this guard). So pyalloc's calls run
//! inside a fork guard: a `pthread_atfork` prepare handler waits until no
//! thread of this copy is inside the tracer and holds new callers back
//! until the fork is done, in the parent and the child, which both go on
//! registering.
//!
//! Why opt-in, not the default (crate docs, "Worker threads in
//! tracemalloc"): when `Py_FinalizeEx` is followed by a new `Py_Initialize`,
//! the runtime state (`tables_lock` with it) is reset while a worker may, in
//! a window of a few instructions, hold the lock it took after
//! `tracemalloc.stop()`; its unlock is then fatal.
//! The calls are made only while `Py_IsInitialized()` (cleared first thing
//! in `Py_FinalizeEx`, before tracemalloc is torn down), which narrows that
//! window but cannot close it. And each registration costs a lock
//! shared by every thread while tracing.
//!
//! Exactness: a trace key in pyalloc's domain is only ever added by the
//! owner of the live block at that address and removed by it before the
//! block goes back to its backend, so an untrack never removes another
//! block's trace. A block records in its owner word (`TRACKED`) whether it
//! was registered, so that only those are untracked: with the option off,
//! freeing costs nothing more, and allocating costs one relaxed load.

/// The tracemalloc domain of pyalloc's private blocks (ASCII "pyal"), for
/// `tracemalloc.DomainFilter(True, TRACEMALLOC_DOMAIN)`. PyMem blocks are in
/// domain 0 as every `PyMem_Malloc` block is.
pub const TRACEMALLOC_DOMAIN: u32 = 0x7079_616c;

#[cfg(pyalloc_py315)]
mod imp {
    use core::cell::Cell;
    use core::ffi::{c_int, c_uint, c_ulong};
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};

    use super::TRACEMALLOC_DOMAIN;
    use crate::cpython;

    extern "C" {
        fn PyTraceMalloc_Track(domain: c_uint, ptr: usize, size: usize) -> c_int;
        fn PyTraceMalloc_Untrack(domain: c_uint, ptr: usize) -> c_int;
        static Py_Version: c_ulong;
    }

    /// How many threads of this copy are inside (or entering) a tracer
    /// call, and whether a fork is waiting for them (`fork_prepare`).
    static INSIDE_TRACER: AtomicUsize = AtomicUsize::new(0);
    static FORKING: AtomicBool = AtomicBool::new(false);

    /// Whether this copy registers its private blocks: the option is on and
    /// the running CPython is 3.15 or later.
    static ENABLED: AtomicBool = AtomicBool::new(false);

    thread_local! {
        /// This thread is inside a tracemalloc call (see the module docs).
        static INSIDE: Cell<bool> = const { Cell::new(false) };
    }

    /// Reads `PYALLOC_TRACEMALLOC` once, at the private heap's set-up.
    pub(in crate::private) fn configure() {
        if !super::requested() {
            return;
        }
        // SAFETY: `Py_Version` is a constant of libpython (3.11+), readable
        // at any time, before `Py_Initialize` too.
        if unsafe { Py_Version } < 0x030F_0000 {
            return;
        }
        // SAFETY: registers plain functions of this copy that only touch
        // two atomics (and yield); glibc registers them under this object's
        // `__dso_handle` and drops them if the object is unloaded (macOS:
        // `at_fork` pins the image first; Windows: no fork, nothing kept).
        if !unsafe { crate::sys::at_fork(fork_prepare, fork_parent, fork_child) } {
            return;
        }
        ENABLED.store(true, Relaxed);
    }

    /// Before `fork`: no thread of this copy may hold tracemalloc's lock
    /// when the child is made. Holds new callers back and waits for those
    /// inside. They finish: they wait at most for `tables_lock`, whose
    /// holders (CPython's tracer, on any thread) wait for nothing of the
    /// forking thread's, and the forking thread is not inside itself (the
    /// tracer never forks).
    extern "C" fn fork_prepare() {
        FORKING.store(true, SeqCst);
        while INSIDE_TRACER.load(SeqCst) != 0 {
            crate::sys::yield_now();
        }
    }

    extern "C" fn fork_parent() {
        FORKING.store(false, SeqCst);
    }

    /// In the child only the forking thread exists: no one is inside.
    extern "C" fn fork_child() {
        INSIDE_TRACER.store(0, SeqCst);
        FORKING.store(false, SeqCst);
    }

    /// Whether this copy registers its private blocks.
    pub(crate) fn enabled() -> bool {
        ENABLED.load(Relaxed)
    }

    /// Registers the fresh private block `user` of `size` bytes; true when
    /// tracemalloc recorded it. One relaxed load when the option is off.
    #[inline]
    pub(in crate::private) fn track(user: *mut u8, size: usize) -> bool {
        ENABLED.load(Relaxed) && track_now(user, size)
    }

    #[inline(never)]
    fn track_now(user: *mut u8, size: usize) -> bool {
        if !cpython::interpreter_running() {
            return false;
        }
        // SAFETY: 3.15+ (checked in `configure`): the call takes no GIL and
        // makes no thread state, only tracemalloc's own lock, and returns -2
        // at once while tracing is off; the interpreter is initialised (read
        // just above; see the module docs for the finalization window).
        guarded(|| unsafe { PyTraceMalloc_Track(TRACEMALLOC_DOMAIN, user as usize, size) } == 0)
            .unwrap_or(false)
    }

    /// Unregisters the private block `user`, which `track` registered,
    /// before it is freed or resized.
    #[inline(never)]
    pub(in crate::private) fn untrack(user: *mut u8) {
        if !ENABLED.load(Relaxed) || !cpython::interpreter_running() {
            // Not initialised: before `Py_Initialize` there are no traces,
            // during and after `Py_FinalizeEx` they are about to be (or
            // were) cleared; in a fork child they stay (module docs).
            return;
        }
        // SAFETY: as in `track_now`; untracking an address that is not
        // traced (tracing restarted, traces cleared) does nothing.
        guarded(|| unsafe { PyTraceMalloc_Untrack(TRACEMALLOC_DOMAIN, user as usize) });
    }

    /// Runs `call` unless this thread is already inside one (a Rust
    /// `PyMem_SetAllocator` hook under tracemalloc's lock), and never while
    /// a fork is being made (`fork_prepare`).
    fn guarded<T>(call: impl FnOnce() -> T) -> Option<T> {
        // `try_with`: during a thread's last TLS destructors the slot may be
        // gone; then the block simply stays untraced.
        INSIDE
            .try_with(|inside| {
                if inside.replace(true) {
                    return None;
                }
                enter_tracer();
                let result = call();
                INSIDE_TRACER.fetch_sub(1, SeqCst);
                inside.set(false);
                Some(result)
            })
            .ok()
            .flatten()
    }

    /// Counts this thread in `INSIDE_TRACER`, first waiting out a fork.
    /// SeqCst on both sides (a store then a load each): either the forking
    /// thread sees this thread counted and waits, or this thread sees
    /// `FORKING` and steps back.
    fn enter_tracer() {
        loop {
            INSIDE_TRACER.fetch_add(1, SeqCst);
            if !FORKING.load(SeqCst) {
                return;
            }
            INSIDE_TRACER.fetch_sub(1, SeqCst);
            while FORKING.load(SeqCst) {
                crate::sys::yield_now();
            }
        }
    }
}

#[cfg(not(pyalloc_py315))]
mod imp {
    use crate::sys;

    /// Below 3.15 the tracer takes the GIL: never called. Says so once when
    /// the option is asked for.
    pub(in crate::private) fn configure() {
        if super::requested() {
            sys::warn_parts(&[
                "pyalloc: PYALLOC_TRACEMALLOC needs CPython 3.15 or later; ",
                "private blocks are not shown to tracemalloc\n",
            ]);
        }
    }

    pub(crate) fn enabled() -> bool {
        false
    }

    #[inline(always)]
    pub(in crate::private) fn track(_user: *mut u8, _size: usize) -> bool {
        false
    }

    pub(in crate::private) fn untrack(_user: *mut u8) {}
}

pub(crate) use imp::enabled;
pub(super) use imp::{configure, track, untrack};

/// Whether `PYALLOC_TRACEMALLOC` asks for tracing (`1`); anything else but
/// unset, empty or `0` is warned about and taken as no.
fn requested() -> bool {
    match crate::sys::env(c"PYALLOC_TRACEMALLOC") {
        None | Some(b"") | Some(b"0") => false,
        Some(b"1") => true,
        Some(_) => {
            crate::sys::warn_parts(&["pyalloc: PYALLOC_TRACEMALLOC is neither '0' nor '1'; off\n"]);
            false
        }
    }
}
