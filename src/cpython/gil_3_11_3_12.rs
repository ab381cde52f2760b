//! CPython 3.11 and 3.12: the start of `struct _gil_runtime_state`
//! (`Include/internal/pycore_gil.h`), laid out the same in both. 3.11 keeps
//! the one GIL in `_PyRuntime.ceval.gil`, 3.12 the main interpreter's in
//! `PyInterpreterState._gil`; neither publishes offsets, so each shim names
//! where the struct starts and `main_gil` confirms it before use.
//!
//! Off x86-64 Linux only 3.12's shim calls `words`, which answers None there.

#![cfg_attr(not(all(target_arch = "x86_64", target_os = "linux")), allow(dead_code))]

use core::ffi::c_ulong;
use core::sync::atomic::{AtomicI32, AtomicPtr};

use pyo3_ffi::PyThreadState;

use super::main_interpreter::GilWords;
use super::token::MainGil;

extern "C" {
    fn _PyEval_GetSwitchInterval() -> c_ulong;
}

/// `interval`, `last_holder`, `locked`: the struct's first fields.
#[repr(C)]
pub(super) struct GilPrefix {
    interval: c_ulong,
    last_holder: AtomicPtr<PyThreadState>,
    locked: AtomicI32,
}

/// The GIL's `locked` and `last_holder`, when the switch interval the
/// interpreter reports is where this layout puts it; None off x86-64 Linux,
/// where the shims' offsets were never checked (the structs before the GIL
/// hold pthread types, whose sizes differ per OS, and `interval` is an
/// `unsigned long`, 32 bits on Windows).
///
/// # Safety
/// On x86-64 Linux, `place` is where the shim says the main GIL's struct
/// starts:
/// `size_of::<GilPrefix>()` readable, 8-aligned bytes of libpython's static
/// memory.
#[inline]
pub(super) unsafe fn words(_gil: &MainGil, place: *const u8) -> Option<GilWords> {
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        return None;
    }
    let gil = place.cast::<GilPrefix>();
    // SAFETY: readable and aligned (the caller's promise); the token proves
    // the main GIL, under which alone `sys.setswitchinterval` writes the
    // interval.
    let interval = unsafe { core::ptr::addr_of!((*gil).interval).read() };
    // SAFETY: a plain getter, called with the main GIL held (the token).
    if interval != unsafe { _PyEval_GetSwitchInterval() } {
        return None;
    }
    // SAFETY: only computes field addresses inside the caller's struct.
    let (locked, last_holder) = unsafe {
        (
            core::ptr::addr_of!((*gil).locked),
            core::ptr::addr_of!((*gil).last_holder),
        )
    };
    Some(GilWords { locked, last_holder })
}
