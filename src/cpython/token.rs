//! The proofs the shims hand out with their answer (`attached_interpreter`):
//! made only in this folder, taken by every function that needs the GIL.

use core::marker::PhantomData;
use core::ops::Deref;

use pyo3_ffi::PyThreadState;

/// Proof that the calling thread is attached to an interpreter (holds its
/// GIL), so `PyMem_*` reach that interpreter's heap. Neither `Send` nor
/// `Sync`: the proof holds for the thread that asked, while it stays inside
/// pyalloc (nothing inside pyalloc detaches a thread).
pub(crate) struct Attached {
    /// The thread state the thread is attached with.
    tstate: *mut PyThreadState,
    _this_thread_only: PhantomData<*const ()>,
}

impl Attached {
    /// # Safety
    /// The calling thread is attached to an interpreter with `tstate` and
    /// stays attached while the token lives.
    pub(super) unsafe fn new_unchecked(tstate: *mut PyThreadState) -> Self {
        Attached {
            tstate,
            _this_thread_only: PhantomData,
        }
    }
}

/// Proof that the calling thread is attached to the main interpreter.
pub(crate) struct MainGil(Attached);

impl MainGil {
    /// # Safety
    /// The calling thread is attached to the main interpreter with `tstate`
    /// and stays attached while the token lives.
    pub(super) unsafe fn new_unchecked(tstate: *mut PyThreadState) -> Self {
        // SAFETY: the main interpreter is an interpreter (the caller's
        // promise covers both).
        MainGil(unsafe { Attached::new_unchecked(tstate) })
    }

    /// The thread state the calling thread holds the main GIL with.
    pub(super) fn thread_state(&self) -> *mut PyThreadState {
        self.0.tstate
    }
}

impl Deref for MainGil {
    type Target = Attached;
    fn deref(&self) -> &Attached {
        &self.0
    }
}
