//! A seeded, reproducible random stress test. Several threads run random
//! operations over one shared pool of blocks: Rust layouts of every size (up
//! to 4 MiB) and alignment (1 to 4096) through `PyAlloc`, C API blocks,
//! `PyMem_Malloc` blocks "from C", `Vec`s handed to C and back; they grow
//! and shrink them, take and release the GIL at random (so pymem blocks are
//! freed and resized on threads without it), collect, and switch tracemalloc
//! on and off. Every block's pattern is checked before it is freed.
//!
//! `PYALLOC_STRESS_SEED` replays a run; `PYALLOC_STRESS_OPS` sets the
//! operations per thread (the long mode: see the README). The same run is
//! repeated in a subprocess under `PYTHONMALLOC=debug` and `malloc_debug`,
//! where every family mismatch, GIL violation and overrun is fatal.

mod common;

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::CString;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::{env, thread};

use pyalloc::{into_pymem, vec_from_pymem, PyAlloc};
use pyo3_ffi as ffi;

const THREADS: usize = 4;
const DEFAULT_OPS: usize = 2000;
const POOL_LIMIT: usize = 400;

/// SplitMix64: small, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    /// Mostly small sizes, sometimes large, rarely up to 4 MiB (or
    /// `PYALLOC_STRESS_MAX_SIZE`, which the valgrind run lowers).
    fn size(&mut self, min: usize) -> usize {
        let size = match self.below(100) {
            0..=69 => self.below(257),
            70..=94 => self.below(64 << 10),
            _ => self.below(max_size()),
        };
        size.clamp(min, max_size().max(min))
    }
}

enum Kind {
    /// From `PyAlloc` with this alignment.
    Rust { align: usize },
    /// From `pyalloc_malloc`/`pyalloc_calloc`/`pyalloc_realloc`.
    CApi,
    /// From `PyMem_Malloc` (C's own), or handed to C by `into_pymem`.
    PyMem,
    /// A Rust `Vec<u8>` (possibly adopted from a PyMem block).
    Vec(Vec<u8>),
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Rust { align } => write!(f, "Rust {{ align: {align} }}"),
            Kind::CApi => f.write_str("CApi"),
            Kind::PyMem => f.write_str("PyMem"),
            Kind::Vec(bytes) => write!(f, "Vec {{ capacity: {} }}", bytes.capacity()),
        }
    }
}

#[derive(Debug)]
struct Block {
    kind: Kind,
    ptr: usize,
    len: usize,
    seed: u8,
}

// SAFETY: a Block owns its memory; every kind may be released on any thread.
unsafe impl Send for Block {}

fn byte(seed: u8, i: usize) -> u8 {
    seed.wrapping_add((i as u8).wrapping_mul(31))
        .wrapping_add((i >> 8) as u8)
}

fn fill(ptr: *mut u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: callers pass a live block of at least `len` bytes.
        unsafe { ptr.add(i).write(byte(seed, i)) };
    }
}

fn intact(ptr: *const u8, len: usize, seed: u8) -> bool {
    // SAFETY: callers pass a live block of at least `len` initialised bytes.
    (0..len).all(|i| unsafe { *ptr.add(i) } == byte(seed, i))
}

struct Worker<'a> {
    rng: Rng,
    pool: &'a Mutex<Vec<Block>>,
    /// This thread's Python thread state while it does not hold the GIL.
    detached: Option<*mut ffi::PyThreadState>,
    seed: u64,
}

impl Worker<'_> {
    fn fail(&self, what: String) -> ! {
        panic!(
            "stress failure (replay with PYALLOC_STRESS_SEED={}): {what}",
            self.seed
        );
    }

    fn holds_gil(&self) -> bool {
        self.detached.is_none()
    }

    /// Takes or releases the GIL with this thread's one thread state (made
    /// in `run_stress` before any operation, see there).
    fn toggle_gil(&mut self) {
        // SAFETY: `detached` is this thread's own thread state, saved by
        // PyEval_SaveThread; restore and save alternate.
        match self.detached.take() {
            Some(tstate) => unsafe { ffi::PyEval_RestoreThread(tstate) },
            None => self.detached = Some(unsafe { ffi::PyEval_SaveThread() }),
        }
        if self.holds_gil() != pyalloc::holds_main_gil() {
            self.fail(format!(
                "pyalloc disagrees about the GIL (held: {})",
                self.holds_gil()
            ));
        }
    }

    fn push(&mut self, block: Block) {
        let mut pool = self.pool.lock().expect("not poisoned");
        if pool.len() < POOL_LIMIT {
            pool.push(block);
            return;
        }
        let victim = self.rng.below(pool.len());
        let old = std::mem::replace(&mut pool[victim], block);
        drop(pool);
        self.release(old);
    }

    fn take(&mut self) -> Option<Block> {
        let mut pool = self.pool.lock().expect("not poisoned");
        if pool.is_empty() {
            return None;
        }
        let index = self.rng.below(pool.len());
        Some(pool.swap_remove(index))
    }

    fn check(&self, block: &Block, when: &str) {
        if !intact(block.ptr as *const u8, block.len, block.seed) {
            self.fail(format!("{when}: the contents of {block:?} changed"));
        }
    }

    /// Checks and frees a block the way its kind allows on this thread.
    fn release(&mut self, block: Block) {
        self.check(&block, "before free");
        // SAFETY: each block is live, owned here, and freed once by the API
        // that its kind allows.
        unsafe {
            match block.kind {
                Kind::Rust { align } => PyAlloc.dealloc(
                    block.ptr as *mut u8,
                    Layout::from_size_align_unchecked(block.len, align),
                ),
                Kind::CApi => pyalloc::pyalloc_free(block.ptr as *mut _),
                Kind::PyMem if self.holds_gil() => ffi::PyMem_Free(block.ptr as *mut _),
                Kind::PyMem => pyalloc::pyalloc_free(block.ptr as *mut _),
                Kind::Vec(bytes) => drop(bytes),
            }
        }
    }

    fn step(&mut self) {
        let seed = self.rng.next() as u8;
        match self.rng.below(16) {
            0..=2 => {
                let align = 1 << self.rng.below(13);
                let len = self.rng.size(1);
                let layout = Layout::from_size_align(len, align).expect("valid");
                let zeroed = self.rng.below(2) == 0;
                // SAFETY: non-zero size; released later with the same layout.
                let ptr = unsafe {
                    if zeroed {
                        PyAlloc.alloc_zeroed(layout)
                    } else {
                        PyAlloc.alloc(layout)
                    }
                };
                if ptr.is_null() || ptr as usize % align != 0 {
                    self.fail(format!("alloc {layout:?} gave {ptr:?}"));
                }
                // SAFETY: `len` bytes were just allocated.
                if zeroed && (0..len).any(|i| unsafe { *ptr.add(i) } != 0) {
                    self.fail(format!("alloc_zeroed {layout:?} is not zero"));
                }
                fill(ptr, len, seed);
                self.push(Block {
                    kind: Kind::Rust { align },
                    ptr: ptr as usize,
                    len,
                    seed,
                });
            }
            3 => {
                let len = self.rng.size(0);
                let ptr = if self.rng.below(2) == 0 {
                    pyalloc::pyalloc_malloc(len)
                } else {
                    pyalloc::pyalloc_calloc(1, len)
                } as *mut u8;
                if ptr.is_null() {
                    self.fail(format!("pyalloc_malloc({len}) gave NULL"));
                }
                fill(ptr, len, seed);
                self.push(Block {
                    kind: Kind::CApi,
                    ptr: ptr as usize,
                    len,
                    seed,
                });
            }
            4 if self.holds_gil() => {
                let len = self.rng.size(0);
                // SAFETY: GIL held.
                let ptr = unsafe { ffi::PyMem_Malloc(len.max(1)) } as *mut u8;
                if ptr.is_null() {
                    self.fail(format!("PyMem_Malloc({len}) gave NULL"));
                }
                fill(ptr, len, seed);
                self.push(Block {
                    kind: Kind::PyMem,
                    ptr: ptr as usize,
                    len,
                    seed,
                });
            }
            5 => {
                let len = self.rng.size(0);
                let mut bytes = Vec::new();
                bytes.extend((0..len).map(|i| byte(seed, i)));
                let ptr = bytes.as_ptr() as usize;
                self.push(Block {
                    kind: Kind::Vec(bytes),
                    ptr,
                    len,
                    seed,
                });
            }
            6..=8 => {
                if let Some(block) = self.take() {
                    self.resize(block, seed);
                }
            }
            9..=11 => {
                if let Some(block) = self.take() {
                    self.release(block);
                }
            }
            12 => {
                if let Some(block) = self.take() {
                    self.hand_over(block);
                }
            }
            13 => self.toggle_gil(),
            14 if self.holds_gil() => {
                pyalloc::collect();
            }
            15 if self.holds_gil() && self.rng.below(8) == 0 => {
                let code = if self.rng.below(2) == 0 { "start" } else { "stop" };
                let source =
                    CString::new(format!("import tracemalloc; tracemalloc.{code}()")).expect("no NUL");
                // SAFETY: GIL held; the source is a valid C string.
                if unsafe { ffi::PyRun_SimpleString(source.as_ptr()) } != 0 {
                    self.fail(format!("tracemalloc.{code}() failed"));
                }
            }
            _ => {}
        }
    }

    /// Grows or shrinks a block through the API its kind allows, keeping
    /// and checking the common prefix.
    fn resize(&mut self, mut block: Block, seed: u8) {
        self.check(&block, "before resize");
        let new_len = self.rng.size(1);
        let keep = block.len.min(new_len);
        match &mut block.kind {
            Kind::Rust { align } => {
                // SAFETY: the block is live with this layout; non-zero new size.
                let moved = unsafe {
                    PyAlloc.realloc(
                        block.ptr as *mut u8,
                        Layout::from_size_align_unchecked(block.len, *align),
                        new_len,
                    )
                };
                if moved.is_null() || moved as usize % *align != 0 {
                    self.fail(format!("realloc {block:?} to {new_len} gave {moved:?}"));
                }
                block.ptr = moved as usize;
            }
            Kind::CApi | Kind::PyMem => {
                // SAFETY: a live C API or PyMem block.
                let moved = unsafe { pyalloc::pyalloc_realloc(block.ptr as *mut _, new_len) } as *mut u8;
                if moved.is_null() {
                    let pymem = common::is_pymem(block.ptr as *const u8);
                    if !pymem || self.holds_gil() {
                        self.fail(format!("pyalloc_realloc {block:?} to {new_len} gave NULL"));
                    }
                    // Documented: a pymem block cannot move without the GIL.
                    self.check(&block, "after a refused realloc");
                    self.push(block);
                    return;
                }
                block.ptr = moved as usize;
            }
            Kind::Vec(bytes) => {
                bytes.resize(new_len, 0);
                if self.rng.below(2) == 0 {
                    bytes.shrink_to_fit();
                }
                block.ptr = bytes.as_ptr() as usize;
            }
        }
        if !intact(block.ptr as *const u8, keep, block.seed) {
            self.fail(format!("resize lost the contents of {block:?}"));
        }
        block.len = new_len;
        block.seed = seed;
        fill(block.ptr as *mut u8, new_len, seed);
        self.push(block);
    }

    /// Rust to C (`into_pymem`, then C frees it with PyMem_Free) and C to
    /// Rust (`vec_from_pymem`).
    fn hand_over(&mut self, block: Block) {
        self.check(&block, "before the hand-over");
        match block.kind {
            Kind::Vec(bytes) if self.holds_gil() => match into_pymem(bytes) {
                Ok(pymem) => {
                    let (ptr, len) = pymem.into_raw();
                    self.push(Block {
                        kind: Kind::PyMem,
                        ptr: ptr as usize,
                        len,
                        seed: block.seed,
                    });
                }
                Err(_) => self.fail("into_pymem failed with the GIL held".into()),
            },
            Kind::PyMem => {
                // SAFETY: a live PyMem block of `len` initialised bytes, given up.
                let bytes = unsafe { vec_from_pymem(block.ptr as *mut u8, block.len) };
                let ptr = bytes.as_ptr() as usize;
                let len = bytes.len();
                self.push(Block {
                    kind: Kind::Vec(bytes),
                    ptr,
                    len,
                    seed: block.seed,
                });
            }
            kind => self.push(Block { kind, ..block }),
        }
    }
}

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
        let checker = Worker {
            rng: Rng(seed),
            pool: &pool,
            detached: None,
            seed,
        };
        let blocks: Vec<Block> = std::mem::take(&mut *pool.lock().expect("not poisoned"));
        for block in blocks {
            checker.check(&block, "at the end");
            // SAFETY: as in `release`, with the GIL held by this thread.
            unsafe {
                match block.kind {
                    Kind::Rust { align } => PyAlloc.dealloc(
                        block.ptr as *mut u8,
                        Layout::from_size_align_unchecked(block.len, align),
                    ),
                    Kind::CApi => pyalloc::pyalloc_free(block.ptr as *mut _),
                    Kind::PyMem => ffi::PyMem_Free(block.ptr as *mut _),
                    Kind::Vec(bytes) => drop(bytes),
                }
            }
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

fn max_size() -> usize {
    static MAX_SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX_SIZE.get_or_init(|| {
        env::var("PYALLOC_STRESS_MAX_SIZE")
            .map(|text| text.parse().expect("PYALLOC_STRESS_MAX_SIZE is a number"))
            .unwrap_or(4 << 20)
    })
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
    let test_binary = env::current_exe().expect("test binary");
    let mut command = match wrapper.split_first() {
        Some((tool, args)) => {
            let mut command = Command::new(tool);
            command.args(args).arg(&test_binary);
            command
        }
        None => Command::new(&test_binary),
    };
    command
        .args(["--exact", "stress", "--nocapture", "--test-threads=1"])
        .env("PYALLOC_STRESS_CHILD", "1")
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
