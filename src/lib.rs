//! # pyalloc
//!
//! A Rust global allocator on CPython's `PyMem_*` heap, sound on every thread,
//! and a C API so that C and Rust code in one Python extension can hand
//! buffers to each other: Rust-built memory released by C with `PyMem_Free`,
//! C's `PyMem_Malloc` memory owned and dropped by Rust.
//!
//! - [`PyAlloc`] is the allocator. On a thread holding the main interpreter's
//!   GIL it uses `PyMem_Malloc`/`PyMem_Calloc`, so `tracemalloc` sees Rust's
//!   memory and `PYTHONMALLOC=debug` checks it; everywhere else it uses
//!   pyalloc's private heap without calling into Python at all.
//! - [`into_pymem`] turns a `Vec<u8>` into a [`PyMemBlock`] that C may
//!   `PyMem_Free`; [`vec_from_pymem`] takes a `PyMem_Malloc` block as a
//!   `Vec<u8>`.
//! - The C API ([`pyalloc_malloc`], [`pyalloc_free`], [`pyalloc_is_pymem`],
//!   ...) is declared in `include/pyalloc.h`.
//!
//! Like every allocator crate, depending on pyalloc installs nothing: the
//! final artifact declares the allocator,
//!
//! ```text
//! #[global_allocator]
//! static GLOBAL: pyalloc::PyAlloc = pyalloc::PyAlloc;
//! ```
//!
//! or turns on the `global-allocator` feature (what pyalloc's own static
//! library does).
//!
//! This page is the one statement of what pyalloc guarantees and where it
//! stops. The README, the banner of `pyalloc.h` and the items' own docs point
//! here. Each guarantee names the tests that check it: `tests/*.rs` and
//! `tests/stress/` (Rust), `c_tests/*.c` (C programs with an embedded
//! interpreter, run by the test of the same name in `tests/c_api.rs`) and
//! `python/tests/` (the Python suite); `docs/TESTING.md` in the repository says
//! how to run them.
//!
//! # Features
//!
//! - `mimalloc` (default): the private heap is mimalloc. Without it, or with
//!   `PYALLOC_PRIVATE_HEAP=system` in the environment, it is the system
//!   allocator, which malloc interposers (memray, heaptrack), valgrind and
//!   AddressSanitizer see.
//! - `global-allocator`: installs [`PyAlloc`] in pyalloc itself (for a static
//!   library linked into C).
//! - `demo`, `testing`: the `pyalloc_demo_*` and `pyalloc_testing_*` exports
//!   that pyalloc's own extension and tests use.
//!
//! # Guarantees
//!
//! **Two families, chosen per call.** A thread attached to the main
//! interpreter (holding its GIL; in a free-threaded build, attached)
//! allocates with `PyMem_Malloc`/`PyMem_Calloc`/`PyMem_Realloc`: the *pymem*
//! family, headerless, so C may `PyMem_Free` the block and tracemalloc
//! attributes it to the Python line that called in. Every other thread, and
//! every thread before `Py_Initialize`, after `Py_FinalizeEx` and attached to
//! a subinterpreter, allocates from pyalloc's *private* heap and calls nothing
//! in libpython: not `PyMem_Raw*` either (with tracemalloc on, it takes the
//! GIL and deadlocks a worker whose GIL holder waits for it), and not
//! `Py_AddPendingCall`. The one exception is opt-in: `PYALLOC_TRACEMALLOC=1`
//! on 3.15+ (below). Tests: `tests/allocator.rs`
//! (`the_gil_is_decided_per_thread`, `every_alignment_in_the_pymem_family`,
//! `every_alignment_in_the_private_family`), `c_tests/exchange.c`,
//! `python/tests/test_demo.py`
//! (`test_tracemalloc_attributes_rust_allocation_to_the_calling_line`,
//! `test_parallel_with_tracemalloc_does_not_deadlock`).
//!
//! **Whether a thread holds the GIL is read per CPython version**
//! (`src/cpython/`), never with `PyGILState_Check`, which answers yes before
//! `Py_Initialize` and, once a subinterpreter has existed, on every thread.
//! 3.12+ and free-threaded builds read the calling thread's attached thread
//! state, which is exact. 3.11 reads the process's GIL holder and accepts it
//! when it is a main-interpreter state that the caller made (its `thread_id`)
//! and either the state the GILState API bound to the caller, or a second
//! state of the caller's whose bound one is another interpreter's; Limits
//! give the one pattern this cannot tell. The interpreter found is compared
//! with the main one. Before that, allocation reads the `locked` word of the
//! main interpreter's GIL: while it is not 1, no thread holds that GIL and
//! the answer is "not attached", with no call into libpython. Its place
//! comes from 3.11's and 3.12's headers (x86-64 Linux) or from the
//! `_Py_DebugOffsets` that 3.13-3.15 publish (checked by their
//! `version`), and is used only once confirmed on a thread found attached to
//! the main interpreter (`locked` reads 1 and `last_holder` is that thread's
//! state; on 3.11-3.12 the switch interval beside them must match as well):
//! a wrong place could only send blocks to the private family. 3.16+ and
//! free-threaded builds skip this read. Tests: `c_tests/layout.c`
//! (the offsets pyalloc reads against each interpreter's own headers),
//! `c_tests/thread_states.c` (3.11's stale thread-state slot, a thread with
//! states in two interpreters, five threads taking and dropping the GIL, and
//! the blind spot under Limits), every C program on CPython 3.11's debug build
//! (`--with-pydebug`).
//!
//! **Any pointer's family is read back exactly**, whatever serves PyMem: a
//! malloc replacement (jemalloc, tcmalloc, mimalloc) or a
//! `PyMem_SetAllocator` hook. A private block sits at 16 mod 32, with the
//! address of its owner and `cookie ^ address ^ owner` in the 16 bytes before
//! it; the cookie is a SipHash of the process's `AT_RANDOM` bytes, the same in
//! every copy of pyalloc in the process. Everything else is a PyMem block.
//! Those bytes are read only for addresses that are 16 mod 32, which always
//! lie on the block's own page. A foreign block passes only if its 8 bytes
//! before happen to equal that value, a 2^-64 event for data not written by
//! someone who has read the cookie out of the heap (the cookie is no defence
//! against an attacker who can read and write the heap). Tests:
//! `c_tests/foreign_blocks.c` (C's PyMem blocks of every size from 0, under
//! preloaded jemalloc, tcmalloc and mimalloc with and without
//! `PYTHONMALLOC=malloc`: `every_program_under_foreign_allocators`; under a
//! hook that adds an 8- or 16-byte header: `header_adding_pymem_hook`).
//!
//! **Released where it may be.** A private block may be released on any
//! thread. A main-interpreter PyMem block may be released on any thread,
//! except through the C API on a thread attached to a subinterpreter with its
//! own obmalloc (Limits). Where PyMem may not be called, it is queued
//! (lock-free) and freed by the next thread that enters pyalloc holding the
//! main interpreter's GIL, or by [`collect`] / [`pyalloc_collect`]. Tests:
//! `tests/allocator.rs` (`pymem_vec_grown_and_dropped_without_the_gil`,
//! `thread_local_destructors_free_pymem_blocks_without_the_gil`,
//! `deferrals_racing_a_drain_keep_the_queue_count`), `c_tests/exchange.c`
//! (including `fork()` with a block queued), `c_tests/subinterpreters.c`,
//! `tests/stress/`.
//!
//! **Interpreter lifetimes.** Every queued block carries the lifetime
//! (`Py_Initialize` .. `Py_FinalizeEx`) current when it was released, read in
//! one atomic load; a drain frees only the current lifetime's blocks, and a
//! `Py_AtExit` hook ends each lifetime. So a block released on any thread at
//! any moment relative to `Py_FinalizeEx` is freed into its own interpreter
//! while it lives, or left alone (counted in `deferred_orphaned`), never freed
//! into a later one. Tests: `c_tests/finalization.c` (8 threads releasing over
//! 200 init/finalize cycles, and a releaser parked inside the window),
//! `c_tests/lifecycle.c`, `tests/exit.rs` (thread-local and `atexit` frees
//! after `Py_FinalizeEx`).
//!
//! **Unloading.** A copy of pyalloc in a shared library (an extension module,
//! a `ctypes` library, a plugin) that registers its `Py_AtExit` hook (the
//! first time a thread holding the main GIL calls it) first keeps that library
//! loaded for the rest of the process (`RTLD_NODELETE`): a later `dlclose`
//! leaves it mapped, so `Py_FinalizeEx` never calls unmapped code. If it
//! cannot, it registers no hook, as when CPython's table is full. Test:
//! `c_tests/unload.c` (`unloaded_copy`).
//!
//! **Several copies in one process** (one per extension module) agree on
//! which blocks are private, and release or resize each other's blocks
//! through the copy that made them. Each copy has its own counters
//! ([`stats`]). Test: `c_tests/copies.c` (twelve copies,
//! `copies_in_one_process`).
//!
//! **Nothing kept by a thread after it exits**, whatever its first pyalloc
//! call and wherever it runs (the thread's body, a Rust or C++ thread-local
//! destructor, a pthread-key destructor): the first call that keeps something
//! (a private block in the thread's cache, a counter block) sets a pthread key
//! of pyalloc's own, whose destructor empties the cache and recycles the
//! counter block; glibc runs it in the same or the next destructor round.
//! From then on the thread frees straight to the backend and counts in shared
//! atomics, so [`pyalloc_stats_get`] walks as many counter blocks as threads
//! were ever alive at once. The one exception is under Limits (Memory). Test:
//! `c_tests/thread_exit.c` (with either private heap).
//!
//! **Idle memory bounded** (the default mimalloc backend): a thread keeps at
//! most 1 MiB of freed private blocks for its next allocations (one block of
//! up to 1 MiB of user bytes, or several of up to 1 MiB in all), and a private
//! block above 1 MiB is a mapping of its own; freed, it joins a pool that the
//! whole process shares (at most 4 mappings, 16 MiB in all, the newest kept)
//! or is unmapped. Tests: `c_tests/thread_exit.c` (idle threads keep at most
//! 1 MiB); the benchmark's idle-threads case measures it against glibc and
//! mimalloc (`bench/README.md`).
//!
//! **Every alignment.** Private blocks are 16-aligned, PyMem blocks as PyMem
//! aligns them (at least 8; pyalloc stops with a message otherwise). Rust
//! layouts above 8 (up to pages and beyond) are built inside a block of
//! either family with a 16-byte header; `realloc` of such blocks allocates,
//! copies and frees. Tests: `tests/allocator.rs`
//! (`every_alignment_in_the_pymem_family`,
//! `every_alignment_in_the_private_family`,
//! `over_aligned_blocks_stay_aligned_in_bulk`), `tests/stress/`.
//!
//! **C boundary.** Zeroing goes through `PyMem_Calloc` or a zeroing private
//! allocation, never malloc + memset. No panic crosses into C. Every NULL and
//! every bad input to a C entry point gets its documented answer. Out of
//! memory is an answer, not a crash: every C entry point returns NULL (tested
//! with a failing `PyMem` allocator and with `RLIMIT_AS`), and pyalloc's
//! extension raises `MemoryError`. Tests: `c_tests/out_of_memory.c`,
//! `c_tests/exchange.c`, `c_tests/foreign_blocks.c`,
//! `python/tests/test_demo.py` (`test_memory_error_when_pymem_fails`).
//!
//! All of the above also holds under a seeded random stress from four threads
//! (`tests/stress/`: every size to 4 MiB and alignment to 4096, C API and
//! PyMem blocks, hand-offs both ways, GIL and tracemalloc switched at random,
//! under the debug hooks, AddressSanitizer's runtime, valgrind and preloaded
//! allocators).
//!
//! # Limits
//!
//! **Which blocks C may `PyMem_Free`**: those [`pyalloc_is_pymem`] calls
//! PyMem, i.e. made by a thread holding the main interpreter's GIL, or passed
//! through [`pyalloc_into_pymem`] / [`into_pymem`] (a copy when the block was
//! private, counted in `rehomed`). [`pyalloc_free`] takes either family, and
//! C's own `PyMem_Malloc` blocks (subinterpreters: below).
//!
//! **CPython 3.11: a main-interpreter thread state is attached only on the
//! thread that made it, or, when another thread attaches it, its maker stays
//! alive and is bound to another live main-interpreter state of its own.**
//! The GILState API binds the first state made on a thread to that thread
//! (its *bound* state), and 3.11 records nothing about who attaches a state.
//! A maker whose bound state is missing, was deleted by another thread, is a
//! subinterpreter's, or is the very state another thread attached (the main
//! thread's own, handed to a thread after `PyEval_SaveThread`), is
//! indistinguishable from a thread holding the GIL with a state it made
//! itself; so is a new thread that reuses an exited maker's thread id. While
//! another thread holds the main GIL with such a state, the maker is taken
//! for the holder (its allocations then call PyMem without the GIL) and the
//! attacher gets private blocks. Everything else is read exactly:
//! threading's threads, `PyGILState_Ensure`, states made on the thread that
//! attaches them (in several interpreters too), and states that a thread
//! bound to a live main-interpreter state makes for others. 3.12+ is exact.
//! `c_tests/thread_states.c` shows the consequence.
//!
//! **Subinterpreters.** pyalloc's own blocks made in a subinterpreter are
//! private. The C API ([`pyalloc_free`], [`pyalloc_realloc`]) takes a block
//! that is not private to be a PyMem block of the calling thread's
//! interpreter, as `PyMem_Free` would: on a thread attached to a
//! subinterpreter it is freed into that subinterpreter's heap. So a
//! main-interpreter PyMem block (pyalloc's from under the main GIL,
//! `pyalloc_into_pymem`'s, C's) must not be released there when the
//! subinterpreter has its own obmalloc (3.12+, every own-GIL interpreter), and
//! a subinterpreter's own PyMem block only there. On a thread attached to no
//! interpreter a PyMem block is taken to be the main interpreter's and queued
//! for it. Rust's allocator and [`vec_from_pymem`] take every PyMem block to
//! be the main interpreter's: dropped in a subinterpreter, it is queued for
//! it. On 3.11, a thread attached to a subinterpreter counts as attached to
//! none (`src/cpython/attached_3_11.rs`): all interpreters share one
//! obmalloc, so its PyMem blocks are queued for the main interpreter, which
//! is sound. pyalloc's own extension refuses to import into a subinterpreter
//! with its own GIL (3.12+); on 3.11 its demo functions raise `RuntimeError`
//! there. Tests: `c_tests/subinterpreters.c` (shared and own GIL, C's own
//! PyMem blocks in them), `python/tests/test_package.py`
//! (`test_module_declines_subinterpreters_with_their_own_gil`).
//!
//! **Finalization.** A PyMem block kept alive across `Py_FinalizeEx` and a new
//! `Py_Initialize` and then freed in the new interpreter is as unsound as with
//! plain `PyMem_Free` (3.12 aborts; earlier versions corrupt the new heap). A
//! Rust `static` or thread-local filled under the GIL is such a block if it
//! outlives the interpreter into a new one: empty it before `Py_FinalizeEx`.
//! (Freed after `Py_FinalizeEx` and before a new `Py_Initialize`, as at
//! process exit, it is left alone.) A PyMem block released without the GIL
//! before any thread holding the GIL has called pyalloc in a lifetime is left
//! alone too (pyalloc cannot know which lifetime it belongs to), counted in
//! `deferred_unstarted` and said once on stderr. An extension module linked
//! with `-Wl,-u,pyalloc_start_lifetime_on_load` (every one
//! `pyalloc.setuptools` builds) starts the lifetime when `import` loads it,
//! on the importing thread (`c_tests/unload.c` shows it); an embedding
//! program calls [`pyalloc_collect`] once after `Py_Initialize`. If CPython's
//! 32 `Py_AtExit` slots are full, releases without the GIL are left alone from
//! then on.
//!
//! **Deferred frees wait for the GIL**: a PyMem block released without the
//! GIL stays allocated until a thread holding the main GIL enters pyalloc or
//! calls [`pyalloc_collect`]. (`Py_AddPendingCall` could run a drain sooner,
//! but on 3.11 it can land in a subinterpreter that never runs it, and from
//! another thread during finalization it can reach a freed interpreter.)
//!
//! **Realloc without the GIL**: [`pyalloc_realloc`] of a PyMem block on a
//! thread attached to no interpreter returns NULL and leaves the block valid
//! (the C API does not know the block's size). Rust's `realloc`, which knows
//! it, moves the block to the private family and queues the old one.
//!
//! **Memory.** A private block carries 32 bytes of bookkeeping. Each thread
//! keeps private blocks it freed for its next allocations, up to 1 MiB in all
//! (or one block of 1 MiB of user bytes and its 32), given back when it exits.
//! Each copy of pyalloc reserves mimalloc arenas 32 MiB at a time, maps each
//! private block above 1 MiB on its own, and keeps up to 16 MiB of freed ones
//! for reuse by any thread (a large block that misses that pool is a fresh
//! mapping, whose pages fault in as they are first written). With
//! `PYALLOC_PRIVATE_HEAP=system` the private heap is glibc's, which keeps
//! freed memory as glibc does. A thread whose first pyalloc call that keeps
//! something runs in the last of glibc's 4 pthread-key destructor rounds, in
//! the destructor of a key numbered after pyalloc's (in practice, created
//! after pyalloc's first use), keeps what it cached then (at most 1 MiB) and
//! one 64-byte counter block for good; mimalloc likewise leaks a thread's heap
//! if a pthread-key destructor in the last round allocates on it
//! (`c_tests/thread_exit.c` checks this corner is what it says). Each copy of
//! pyalloc uses one pthread key, and keeps its own shared object loaded for
//! good once it has made it (the key's destructor is its code).
//!
//! **Tools.** valgrind, AddressSanitizer and malloc interposers (memray,
//! heaptrack) see the private heap only as `malloc` blocks: run with
//! `PYALLOC_PRIVATE_HEAP=system` (or build without the `mimalloc` feature).
//! With `PYTHONMALLOC=malloc`, valgrind reports pyalloc's read before C's
//! blocks; `c_tests/valgrind-python.supp` suppresses exactly that read, given
//! debug information for pyalloc.
//!
//! **Hand-offs copy unless [`PyAlloc`] is the global allocator.**
//! [`is_global_allocator`], which decides it, starts a thread once to find
//! out; a copy is counted in `rehomed` and said once on stderr. Test:
//! `tests/wrapped_allocator.rs`.
//!
//! **Rust's own out-of-memory**: infallible collections (`Vec::push`) still
//! abort on out-of-memory, as Rust does everywhere.
//!
//! **Free-threaded builds (3.14t, 3.15t) are compiled, not run** (no
//! interpreter here to run them), and a CPython newer than pyalloc knows
//! (3.16) reads no CPython layout itself: the README's Status says what is
//! tested where.
//!
//! # Worker threads in tracemalloc (CPython 3.15+, opt-in)
//!
//! With `PYALLOC_TRACEMALLOC=1` in the environment (read once, when pyalloc
//! first runs in the process), private blocks, the memory of threads without
//! the GIL, are registered with tracemalloc while it traces, in domain
//! [`TRACEMALLOC_DOMAIN`] (1887002988, ASCII "pyal"; `PYALLOC_TRACEMALLOC_DOMAIN`
//! in C, `pyalloc.TRACEMALLOC_DOMAIN` in Python), each with its requested size
//! and an empty traceback, and untracked before they are freed or resized.
//! `tracemalloc.get_traced_memory()` then covers worker threads' Rust memory,
//! and `tracemalloc.DomainFilter(True, pyalloc.TRACEMALLOC_DOMAIN)` selects it
//! in a snapshot. [`tracemalloc_tracking`] ([`pyalloc_tracemalloc_tracking`])
//! says whether this copy does it. Below 3.15 it stays off (with one line on
//! stderr): there `PyTraceMalloc_Track` takes the GIL from a thread without a
//! thread state and deadlocks when the GIL holder joins that thread (CPython
//! gh-155725, fixed in 3.15).
//!
//! What makes it sound: 3.15's `PyTraceMalloc_Track`/`Untrack` take no GIL and
//! make no thread state, only tracemalloc's own lock, and read `tracing` again
//! under it, so calls racing `tracemalloc.start()`/`stop()` either register in
//! the new session or do nothing; a block tracked before a stop is untracked
//! as a no-op; the tracer allocates with C's `malloc` and the raw allocator
//! saved at `start()`, never with pyalloc; pyalloc calls only while
//! `Py_IsInitialized()`, so not before `Py_Initialize` nor once `Py_FinalizeEx`
//! has begun; and a `pthread_atfork` guard makes a fork wait until no pyalloc
//! thread is inside the tracer (without it a child's first traced allocation
//! deadlocked, 1 run in 4), so parent and child both go on tracing.
//!
//! Why it is not the default, and its limits:
//! - When `Py_FinalizeEx` is followed by a new `Py_Initialize` while workers
//!   allocate, CPython resets the runtime state, tracemalloc's lock included,
//!   and a worker that took that lock after the stop, for the few
//!   instructions in which it finds tracing off, would then unlock a reset
//!   lock (fatal). `Py_IsInitialized()` narrows that window but is no fence (a
//!   worker that read it may run on after `Py_FinalizeEx`).
//! - While tracing, every worker allocation and free takes that one lock
//!   shared by all threads. Cost (3.15, a loaded 2-core machine, a 64 B
//!   pair without the GIL): with the option off, one relaxed load per
//!   allocation and nothing per free; on, while tracemalloc is off, about
//!   30 ns more per pair (a call into libpython and the fork guard's
//!   counter); while it traces, 0.46-0.57 us per pair instead of about 45 ns.
//! - A Rust `PyMem_SetAllocator` hook of the raw domain must not allocate
//!   through pyalloc while this is on: CPython's tracer calls it holding its
//!   own lock, which pyalloc's registration would take again. pyalloc refuses
//!   that only when it entered the tracer itself, in the same copy.
//! - Traces carry no Python traceback (the worker has no frame). In a fork
//!   child, the traces of blocks that the parent's other threads held stay
//!   until tracemalloc stops or clears them.
//!
//! Tests: `c_tests/tracemalloc.c` (counted to the byte in pyalloc's domain,
//! untracked when freed or resized, the GIL holder joining busy workers,
//! `tracemalloc.stop()`/`start()` and `Py_FinalizeEx` racing them, 40 forks;
//! nothing traced without the option or below 3.15),
//! `python/tests/test_demo.py`
//! (`test_worker_memory_is_traced_on_315_with_the_option`).
//!
//! # Modules
//!
//! The modules, top down: the faces (`alloc`, `capi`, `ownership`, `demo`,
//! `testing`), side by side on the panic boundary (`panic`); the family
//! choice (`family/`: the decision, over-aligned blocks, the hand-off copy);
//! the two heaps (`pymem/` with its queue, and `private/`); the CPython
//! version shims (`cpython/`), the only place that makes the GIL tokens;
//! and the plumbing (`stats`, and `sys/`: the C library and thread exit).

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod alloc;
mod capi;
mod cpython;
#[cfg(feature = "demo")]
mod demo;
mod family;
mod ownership;
mod panic;
mod private;
mod pymem;
mod stats;
mod sys;
mod testing;

pub use crate::alloc::PyAlloc;
pub use crate::capi::{
    pyalloc_calloc, pyalloc_collect, pyalloc_free, pyalloc_into_pymem, pyalloc_is_pymem, pyalloc_malloc,
    pyalloc_realloc, pyalloc_stats_get, pyalloc_tracemalloc_tracking, pyalloc_version,
};
#[cfg(feature = "demo")]
pub use crate::demo::{pyalloc_demo_consume, pyalloc_demo_hex, pyalloc_demo_parallel, DEMO_MAX_THREADS};
pub use crate::family::handoff::is_global_allocator;
pub use crate::ownership::{into_pymem, vec_from_pymem, PyMemBlock};
pub use crate::private::TRACEMALLOC_DOMAIN;
pub use crate::stats::Stats;
#[cfg(feature = "testing")]
pub use crate::testing::{
    pyalloc_testing_counter_blocks, pyalloc_testing_layout, pyalloc_testing_main_gil,
    pyalloc_testing_set_pause,
};

/// A snapshot of this copy of pyalloc's counters, summed over all threads.
pub fn stats() -> Stats {
    stats::snapshot()
}

/// Whether this copy shows its private blocks (worker threads' memory) to
/// tracemalloc, in domain [`TRACEMALLOC_DOMAIN`]: opt-in with
/// `PYALLOC_TRACEMALLOC=1`, CPython 3.15 and later only (crate docs, "Worker
/// threads in tracemalloc": why it is not the default).
pub fn tracemalloc_tracking() -> bool {
    private::tracemalloc_tracking()
}

/// Frees the PyMem blocks that were released on threads without the GIL and
/// returns how many; 0 when the calling thread does not hold the main
/// interpreter's GIL.
pub fn collect() -> usize {
    family::collect()
}

/// Whether the calling thread holds the main interpreter's GIL, as pyalloc
/// decides it for every allocation. A question only: it frees nothing and
/// registers nothing.
pub fn holds_main_gil() -> bool {
    matches!(cpython::attached_interpreter(), cpython::Interpreter::Main(_))
}

/// Whether `block` is a PyMem block rather than one of pyalloc's private
/// blocks: what `pyalloc_is_pymem` answers in C.
///
/// # Safety
/// `block` is NULL or a live block from `PyAlloc`, pyalloc's C API or PyMem.
pub unsafe fn is_pymem<T: ?Sized>(block: *const T) -> bool {
    // SAFETY: as the caller promises.
    unsafe { family::is_pymem(block.cast::<u8>().cast_mut()) }
}

#[cfg(feature = "global-allocator")]
#[global_allocator]
static GLOBAL: PyAlloc = PyAlloc;
