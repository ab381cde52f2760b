//! Hooks for pyalloc's own tests, compiled only with the `testing` feature
//! (the `PYALLOC_TESTING` section of `pyalloc.h`).

#[cfg(feature = "testing")]
mod hooks {
    use core::sync::atomic::Ordering::Release;

    use crate::pymem::queue::PAUSE;

    /// Installs `hook` (or removes it, with NULL): `pyalloc_free` and Rust's
    /// deallocation call it on a thread without the GIL after reading the
    /// interpreter lifetime and before queuing the block, so that a test can
    /// park a releasing thread inside that window.
    #[no_mangle]
    pub extern "C" fn pyalloc_testing_set_pause(hook: Option<extern "C" fn()>) {
        let raw = hook.map_or(core::ptr::null_mut(), |hook| hook as *mut ());
        PAUSE.store(raw, Release);
    }

    /// Writes the byte offsets of `interp` and (on 3.11) `thread_id` in
    /// `PyThreadState` as pyalloc reads them, for `c_tests/layout.c` to
    /// compare with the interpreter's header. A field pyalloc does not read
    /// on this version (`thread_id` from 3.12, both from 3.16) is 0.
    ///
    /// # Safety
    /// Both pointers are writable.
    #[no_mangle]
    pub unsafe extern "C" fn pyalloc_testing_layout(interp: *mut usize, thread_id: *mut usize) {
        // SAFETY: as the caller promises.
        unsafe {
            interp.write(crate::cpython::INTERP_OFFSET);
            thread_id.write(crate::cpython::THREAD_ID_OFFSET);
        }
    }

    /// Writes the main GIL's `locked` word, once pyalloc has confirmed where
    /// it is (it then answers "not attached" on allocation without a call
    /// while the word is not 1), and how many allocations it has answered
    /// so. The word is NULL where pyalloc does not read it (3.16 and newer,
    /// free-threaded builds, 3.11-3.12 off x86-64 Linux, Windows), before the first
    /// allocation by a thread attached to the main interpreter, and when
    /// confirmation failed.
    ///
    /// # Safety
    /// Both pointers are writable.
    #[no_mangle]
    pub unsafe extern "C" fn pyalloc_testing_main_gil(
        locked: *mut *const core::ffi::c_int,
        answered: *mut u64,
    ) {
        let (word, answers) = crate::cpython::main_gil_testing_state();
        // SAFETY: as the caller promises.
        unsafe {
            locked.write(word);
            answered.write(answers);
        }
    }

    /// Writes how many of this copy's per-thread counter blocks are claimed
    /// by a thread, and how many exist (the list `pyalloc_stats_get` walks).
    ///
    /// # Safety
    /// Both pointers are writable.
    #[no_mangle]
    pub unsafe extern "C" fn pyalloc_testing_counter_blocks(in_use: *mut usize, total: *mut usize) {
        let (claimed, all) = crate::stats::counter_blocks();
        // SAFETY: as the caller promises.
        unsafe {
            in_use.write(claimed);
            total.write(all);
        }
    }
}

#[cfg(feature = "testing")]
pub use hooks::{
    pyalloc_testing_counter_blocks, pyalloc_testing_layout, pyalloc_testing_main_gil,
    pyalloc_testing_set_pause,
};
