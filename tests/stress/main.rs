//! A seeded, reproducible random stress test. Several threads run random
//! operations over one shared pool of blocks: Rust layouts of every size (up
//! to 4 MiB) and alignment (1 to 4096) through `PyAlloc`, C API blocks,
//! `PyMem_Malloc` blocks "from C", `Vec`s handed to C and back; they grow
//! and shrink them, take and release the GIL at random (so pymem blocks are
//! freed and resized on threads without it), collect, and switch tracemalloc
//! on and off. Every block's pattern is checked before it is freed.
//!
//! `PYALLOC_STRESS_SEED` replays a run; `PYALLOC_STRESS_OPS` sets the
//! operations per thread (default 2000; a long run: docs/TESTING.md, "The
//! stress test, longer"). The same run is
//! repeated in a subprocess under `PYTHONMALLOC=debug` and `malloc_debug`,
//! where every family mismatch, GIL violation and overrun is fatal, and
//! again with ASan's runtime, under valgrind and under preloaded malloc
//! replacements. `blocks.rs` holds the pool's entries, `worker.rs` one
//! thread's operations.

mod blocks;
#[path = "../common/mod.rs"]
mod common;
mod worker;

use std::ffi::CString;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::{env, thread};

use pyo3_ffi as ffi;

use blocks::{Block, Rng};
use worker::Worker;

const THREADS: usize = 4;
const DEFAULT_OPS: usize = 2000;

/// `PYALLOC_STRESS_SEED`, or a fresh seed from the clock.
fn seed() -> u64 {
    match env::var("PYALLOC_STRESS_SEED") {
        Ok(text) => text.parse().expect("PYALLOC_STRESS_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(1),
    }
}

fn run_stress(seed: u64, ops: usize) {
    common::ensure_python();
    let pool = Mutex::new(Vec::new());
    let failed = AtomicBool::new(false);
    println!("stress: seed {seed}, {THREADS} threads x {ops} operations");
    // Each worker makes its thread state once, before any worker switches
    // tracemalloc, and then takes and releases the GIL with it. Making one
    // calls PyMem_RawCalloc without the GIL, which tracemalloc.stop() on
    // another thread crashes in CPython before 3.12.9 and 3.13.2 (gh-128679;
    // pyalloc never calls PyMem_Raw*). The barriers keep that out of reach.
    let started = Barrier::new(THREADS);
    let finished = Barrier::new(THREADS);
    thread::scope(|scope| {
        for index in 0..THREADS {
            let (pool, failed, started, finished) = (&pool, &failed, &started, &finished);
            scope.spawn(move || {
                // SAFETY: the interpreter runs; this thread has no thread
                // state yet. Ensure makes one and takes the GIL; SaveThread
                // releases the GIL and keeps the state for toggle_gil.
                let gilstate = unsafe { ffi::PyGILState_Ensure() };
                let mut worker = Worker {
                    rng: Rng(seed ^ (index as u64).wrapping_mul(0xd1b5_4a32_d192_ed03)),
                    pool,
                    detached: Some(unsafe { ffi::PyEval_SaveThread() }),
                    seed,
                };
                started.wait();
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    for _ in 0..ops {
                        if failed.load(Ordering::Relaxed) {
                            break;
                        }
                        worker.step();
                    }
                }));
                if worker.holds_gil() {
                    worker.toggle_gil();
                }
                finished.wait();
                // SAFETY: this thread's saved state; Release pairs with the
                // Ensure above and deletes the state with the GIL held.
                unsafe {
                    ffi::PyEval_RestoreThread(worker.detached.take().expect("saved above"));
                    ffi::PyGILState_Release(gilstate);
                }
                if let Err(panic) = outcome {
                    failed.store(true, Ordering::Relaxed);
                    std::panic::resume_unwind(panic);
                }
            });
        }
    });
    // Everything left is freed with the GIL held, then the queue must be empty.
    common::with_gil(|| {
        // A worker that holds the GIL (no detached state) frees the rest.
        let mut checker = Worker {
            rng: Rng(seed),
            pool: &pool,
            detached: None,
            seed,
        };
        let blocks: Vec<Block> = std::mem::take(&mut *pool.lock().expect("not poisoned"));
        for block in blocks {
            checker.release(block);
        }
        let stop = CString::new("import tracemalloc; tracemalloc.stop()").expect("no NUL");
        // SAFETY: GIL held.
        unsafe { ffi::PyRun_SimpleString(stop.as_ptr()) };
        pyalloc::collect();
        let stats = pyalloc::stats();
        assert_eq!(
            stats.deferred_pending, 0,
            "the deferred queue is empty at the end"
        );
        println!("stress: clean; {stats:?}");
    });
}

fn ops() -> usize {
    env::var("PYALLOC_STRESS_OPS")
        .map(|text| text.parse().expect("PYALLOC_STRESS_OPS is a number"))
        .unwrap_or(DEFAULT_OPS)
}

/// The stress run in this process (default allocator), or, when the parent
/// asks for it, the run it delegated under another PYTHONMALLOC.
#[test]
fn stress() {
    let _serial = common::serial();
    run_stress(seed(), ops());
}

/// The `stress` test of this binary, run again as a child process with the
/// given seed, operations per thread and environment, under `wrapper`
/// (valgrind) when one is given.
fn stress_child(seed: u64, ops: usize, wrapper: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = common::command_under(wrapper, &env::current_exe().expect("test binary"));
    command
        .args(["--exact", "stress", "--nocapture", "--test-threads=1"])
        .env("PYALLOC_STRESS_SEED", seed.to_string())
        .env("PYALLOC_STRESS_OPS", ops.to_string())
        .envs(vars.iter().copied());
    command
}

/// The same seed again in a child process under the debug hooks.
#[test]
fn stress_under_debug_hooks() {
    let seed = seed();
    for mode in ["debug", "malloc_debug"] {
        let status = stress_child(seed, (ops() / 2).max(1), &[], &[("PYTHONMALLOC", mode)])
            .status()
            .expect("the test binary runs");
        assert!(
            status.success(),
            "stress under PYTHONMALLOC={mode} failed (PYALLOC_STRESS_SEED={seed})"
        );
    }
}

/// A short run of the same seed under valgrind with every block a `malloc`
/// block (`PYTHONMALLOC=malloc`, `PYALLOC_PRIVATE_HEAP=system`): no invalid
/// read, write or free across threads, families and hand-offs.
#[test]
fn stress_under_valgrind() {
    let valgrind = common::require("valgrind");
    let seed = seed();
    let suppressions = format!(
        "--suppressions={}/c_tests/valgrind-python.supp",
        env!("CARGO_MANIFEST_DIR")
    );
    let status = stress_child(
        seed,
        300,
        &[
            &valgrind,
            "--quiet",
            "--error-exitcode=99",
            "--leak-check=no",
            &suppressions,
        ],
        &[
            ("PYTHONMALLOC", "malloc"),
            ("PYALLOC_PRIVATE_HEAP", "system"),
            ("PYALLOC_STRESS_MAX_SIZE", "65536"),
        ],
    )
    .status()
    .expect("valgrind runs");
    assert!(
        status.success(),
        "stress under valgrind failed (PYALLOC_STRESS_SEED={seed})"
    );
}

/// The same seed with AddressSanitizer's runtime preloaded and every block a
/// `malloc` block: each has redzones, and any invalid or double free is
/// fatal. (Stable Rust cannot instrument its own code; the C tests' ASan
/// builds cover the C side.)
#[test]
fn stress_under_asan() {
    let runtime = Command::new("cc")
        .arg("-print-file-name=libasan.so")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    assert!(
        std::path::Path::new(&runtime).is_absolute(),
        "AddressSanitizer's runtime (libasan.so of the C compiler, gcc's libasan8) is required by this test and was not found"
    );
    let seed = seed();
    let output = stress_child(
        seed,
        (ops() / 2).max(1),
        &[],
        &[
            ("LD_PRELOAD", &runtime),
            ("ASAN_OPTIONS", "detect_leaks=0:halt_on_error=1:verbosity=1"),
            ("PYTHONMALLOC", "malloc"),
            ("PYALLOC_PRIVATE_HEAP", "system"),
        ],
    )
    .output()
    .expect("the test binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("AddressSanitizer"), "ASan's runtime did not load");
    assert!(
        output.status.success(),
        "stress under ASan failed (PYALLOC_STRESS_SEED={seed}):\n{}",
        &stderr[stderr.len().saturating_sub(4000)..]
    );
}

/// The same seed with jemalloc, tcmalloc and mimalloc preloaded (they return
/// 8-aligned blocks of 8 bytes or less), with CPython's own allocators and
/// with `PYTHONMALLOC=malloc`.
#[test]
fn stress_under_foreign_allocators() {
    let seed = seed();
    for allocator in ["jemalloc", "tcmalloc", "mimalloc"] {
        let library = common::preloaded_allocator(allocator);
        for mode in [None, Some("malloc")] {
            let mut vars = vec![("LD_PRELOAD", library.as_str())];
            vars.extend(mode.map(|mode| ("PYTHONMALLOC", mode)));
            let status = stress_child(seed, (ops() / 4).max(1), &[], &vars)
                .status()
                .expect("the test binary runs");
            assert!(
                status.success(),
                "stress with {allocator} preloaded, PYTHONMALLOC={mode:?}, failed (PYALLOC_STRESS_SEED={seed})"
            );
        }
    }
}
