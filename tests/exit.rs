//! Rust code that frees at process exit, after `Py_FinalizeEx`: the main
//! thread's thread-local destructors and an `atexit` handler that drains a
//! static. Their pymem blocks must be left alone (orphaned), never freed into
//! the finalized interpreter, and nothing may crash. Runs once with the
//! default allocator and once under `PYTHONMALLOC=debug` (re-executing itself).
//!
//! glibc's `exit` runs thread-local destructors first, then `atexit` handlers
//! in reverse order: the check registered first runs last and sees both.

use std::cell::RefCell;
use std::process::Command;
use std::sync::Mutex;

use pyo3_ffi as ffi;

#[cfg(not(feature = "global-allocator"))]
#[global_allocator]
static GLOBAL: pyalloc::PyAlloc = pyalloc::PyAlloc;

extern "C" {
    fn atexit(handler: extern "C" fn()) -> i32;
    fn _exit(status: i32) -> !;
}

thread_local! {
    static MAIN_THREAD_CACHE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}
static GLOBAL_CACHE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
static BEFORE: Mutex<Option<pyalloc::Stats>> = Mutex::new(None);

extern "C" fn drain_global_cache() {
    GLOBAL_CACHE.lock().expect("not poisoned").clear();
}

extern "C" fn check_after_everything() {
    let before = BEFORE.lock().expect("not poisoned").expect("recorded");
    let after = pyalloc::stats();
    let orphaned = after.deferred_orphaned - before.deferred_orphaned;
    let ok = orphaned == 2 && after.pymem_frees == before.pymem_frees && after.deferred_pending == 0;
    println!("exit: {orphaned} pymem blocks released after finalization were left alone");
    println!(
        "{}",
        if ok {
            "exit: 1 passed, 0 failed"
        } else {
            "exit: 0 passed, 1 failed"
        }
    );
    // SAFETY: ends the process with the verdict; nothing runs after this.
    unsafe { _exit(if ok { 0 } else { 1 }) };
}

fn main() {
    if std::env::var_os("PYALLOC_EXIT_CHILD").is_none() {
        for mode in [None, Some("debug")] {
            let mut command = Command::new(std::env::current_exe().expect("test binary"));
            command.env("PYALLOC_EXIT_CHILD", "1").env_remove("PYTHONMALLOC");
            if let Some(mode) = mode {
                command.env("PYTHONMALLOC", mode);
            }
            let status = command.status().expect("the child runs");
            assert!(status.success(), "exit test failed (PYTHONMALLOC={mode:?})");
        }
        return;
    }
    // SAFETY: the handlers take no arguments and only touch statics.
    unsafe {
        assert_eq!(atexit(check_after_everything), 0);
        assert_eq!(atexit(drain_global_cache), 0);
    }
    // SAFETY: this thread initialises, uses and finalizes the interpreter.
    unsafe { ffi::Py_InitializeEx(0) };
    assert!(pyalloc::holds_main_gil());
    MAIN_THREAD_CACHE.with(|cache| cache.borrow_mut().extend_from_slice(&[1u8; 300]));
    GLOBAL_CACHE.lock().expect("not poisoned").push(vec![2u8; 300]);
    // SAFETY: both are live blocks of PyAlloc.
    let pymem = MAIN_THREAD_CACHE.with(|cache| unsafe { pyalloc::is_pymem(cache.borrow().as_ptr()) })
        && unsafe { pyalloc::is_pymem(GLOBAL_CACHE.lock().expect("not poisoned")[0].as_ptr()) };
    assert!(pymem, "both caches were filled on the PyMem heap");
    pyalloc::collect();
    // SAFETY: the GIL is held by this thread, which initialised Python.
    assert_eq!(unsafe { ffi::Py_FinalizeEx() }, 0);
    *BEFORE.lock().expect("not poisoned") = Some(pyalloc::stats());
    // Returning runs the thread-local destructor, then the atexit handlers.
}
