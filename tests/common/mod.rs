//! An embedded interpreter for the Rust tests: started once on a dedicated
//! thread, which is its main thread (pending calls run there), and which
//! releases the GIL between jobs so that any test thread can take it.

#![allow(dead_code)]

use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;

use pyo3_ffi as ffi;

type Job = Box<dyn FnOnce() + Send>;

fn main_thread() -> &'static Mutex<Sender<Job>> {
    static MAIN: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    MAIN.get_or_init(|| {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready, started) = mpsc::channel();
        thread::Builder::new()
            .name("python-main".into())
            .spawn(move || {
                // SAFETY: the interpreter is initialised once, here; this thread
                // then releases the GIL and takes it back only to run a job.
                unsafe {
                    ffi::Py_InitializeEx(0);
                    let mut state = ffi::PyEval_SaveThread();
                    ready.send(()).expect("the test waits");
                    for job in inbox {
                        ffi::PyEval_RestoreThread(state);
                        job();
                        state = ffi::PyEval_SaveThread();
                    }
                }
            })
            .expect("spawn the interpreter's main thread");
        started.recv().expect("the interpreter started");
        Mutex::new(jobs)
    })
}

/// Starts the interpreter if it is not running yet.
pub fn ensure_python() {
    main_thread();
}

/// Runs `job` on the interpreter's main thread with the GIL held.
pub fn on_main_thread<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> T {
    let (reply, answer) = mpsc::channel();
    main_thread()
        .lock()
        .expect("not poisoned")
        .send(Box::new(move || reply.send(job()).expect("the caller waits")))
        .expect("the main thread runs");
    answer.recv().expect("the job ran")
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
            // A drain the test scheduled with Py_AddPendingCall runs now, so
            // the next test can schedule its own.
            // SAFETY: on the main thread with the GIL held.
            let status = on_main_thread(|| unsafe { ffi::Py_MakePendingCalls() });
            assert_eq!(status, 0, "pending calls ran");
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
    pyalloc::pyalloc_is_pymem(block.cast())
}
