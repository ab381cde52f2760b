//! Shared helpers of the Rust tests: an embedded interpreter started once on
//! a dedicated thread, the GIL taken and released around a closure, a lock
//! that serialises tests reading the global counters, the tools and malloc
//! replacements the tests need, and `PyAlloc` as every test binary's global
//! allocator.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;

use pyo3_ffi as ffi;

/// Every test binary runs on `PyAlloc`, as a user's program would: the
/// harness's own allocations exercise it too. (With pyalloc's
/// `global-allocator` feature the library declares it instead.)
#[cfg(not(feature = "global-allocator"))]
#[global_allocator]
static GLOBAL: pyalloc::PyAlloc = pyalloc::PyAlloc;

/// Starts the interpreter if it is not running yet: once, on a dedicated
/// thread (its main thread), which then releases the GIL for good so that
/// any test thread can take it.
pub fn ensure_python() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let (ready, started) = mpsc::channel();
        thread::Builder::new()
            .name("python-main".into())
            .spawn(move || {
                // SAFETY: the interpreter is initialised once, here; this
                // thread then releases the GIL and keeps its thread state.
                unsafe {
                    ffi::Py_InitializeEx(0);
                    ffi::PyEval_SaveThread();
                }
                ready.send(()).expect("the test waits");
                loop {
                    thread::park();
                }
            })
            .expect("spawn the interpreter's main thread");
        started.recv().expect("the interpreter started");
    });
}

/// Runs `job` on the calling thread with the main interpreter's GIL held.
pub fn with_gil<T>(job: impl FnOnce() -> T) -> T {
    ensure_python();
    // SAFETY: the interpreter is initialised; Ensure/Release pair up.
    unsafe {
        let state = ffi::PyGILState_Ensure();
        let result = job();
        ffi::PyGILState_Release(state);
        result
    }
}

/// Runs `job` with the GIL released again (inside `with_gil`).
pub fn without_gil<T>(job: impl FnOnce() -> T) -> T {
    // SAFETY: called with the GIL held by this thread; restored below.
    unsafe {
        let state = ffi::PyEval_SaveThread();
        let result = job();
        ffi::PyEval_RestoreThread(state);
        result
    }
}

/// Held by a test for its whole run: tests that read the global statistics
/// or the deferred queue must not disturb one another's counts. When the
/// test ends (without panicking), the deferred queue must empty on collect.
pub struct Serial(#[allow(dead_code)] MutexGuard<'static, ()>);

impl Drop for Serial {
    fn drop(&mut self) {
        if !thread::panicking() {
            with_gil(pyalloc::collect);
            let stats = pyalloc::stats();
            assert_eq!(
                stats.deferred_pending, 0,
                "the deferred queue is empty after the test: {stats:?}"
            );
        }
    }
}

pub fn serial() -> Serial {
    static SERIAL: Mutex<()> = Mutex::new(());
    Serial(SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// Whether C could `PyMem_Free` this block.
pub fn is_pymem<T: ?Sized>(block: *const T) -> bool {
    // SAFETY: the tests pass live blocks of PyAlloc, the C API or PyMem.
    unsafe { pyalloc::is_pymem(block) }
}

/// A command that runs `program`, under `wrapper` (valgrind and its
/// options) when one is given.
pub fn command_under(wrapper: &[&str], program: &Path) -> Command {
    match wrapper.split_first() {
        Some((tool, args)) => {
            let mut command = Command::new(tool);
            command.args(args).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// A tool a test cannot run without: its path, or a failure naming it.
pub fn require(tool: &str) -> String {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| {
            panic!("{tool} is required by this test and was not found (scripts/test.sh installs it)")
        })
}

/// The malloc replacement the foreign-allocator runs preload, found by what
/// the system has: the first of its sonames that the dynamic linker's cache
/// (`ldconfig -p`) or one of the usual library directories holds. Debian 12
/// ships libjemalloc2, libtcmalloc-minimal4 and libmimalloc2.0
/// (`libmimalloc.so.2`); Debian testing renames tcmalloc's package
/// (libtcmalloc-minimal4t64) and ships mimalloc 3 (`libmimalloc.so.3`). A
/// missing library fails the test, naming it.
pub fn preloaded_allocator(name: &str) -> String {
    let sonames: &[&str] = match name {
        "jemalloc" => &["libjemalloc.so.2"],
        "tcmalloc" => &["libtcmalloc_minimal.so.4"],
        "mimalloc" => &["libmimalloc.so.2", "libmimalloc.so.3"],
        other => panic!("no such allocator: {other}"),
    };
    find_library(sonames).unwrap_or_else(|| {
        panic!(
            "{name} ({}) is required by this test and was not found (scripts/system-packages.sh installs it)",
            sonames.join(" or ")
        )
    })
}

/// The path of the first of `sonames` the system has.
fn find_library(sonames: &[&str]) -> Option<String> {
    // `ldconfig -p` lines read "\tlibfoo.so.2 (libc6,x86-64) => /path/libfoo.so.2".
    let cache = ["ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"]
        .iter()
        .find_map(|tool| Command::new(tool).arg("-p").output().ok())
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default();
    let directories = [
        "/usr/lib/x86_64-linux-gnu",
        "/lib/x86_64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
    ];
    sonames.iter().find_map(|soname| {
        let cached = cache.lines().find_map(|line| {
            let (entry, path) = line.split_once(" => ")?;
            let entry_name = entry.split_whitespace().next()?;
            (entry_name == *soname && Path::new(path.trim()).exists()).then(|| path.trim().to_owned())
        });
        cached.or_else(|| {
            directories
                .iter()
                .map(|directory| Path::new(directory).join(soname))
                .find(|path| path.exists())
                .map(|path| path.display().to_string())
        })
    })
}
