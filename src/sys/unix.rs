//! What glibc Linux and macOS share: POSIX calls with the same signature on
//! both (the types that differ, `pthread_key_t`, come from `os`).

use core::ffi::{c_char, c_int, c_ulong, c_void};

const PROT_READ_WRITE: c_int = 0x1 | 0x2;
/// `MAP_PRIVATE | MAP_ANONYMOUS`: `MAP_ANONYMOUS` is 0x20 on Linux, 0x1000
/// (`MAP_ANON`) on macOS.
#[cfg(target_os = "linux")]
const MAP_PRIVATE_ANONYMOUS: c_int = 0x02 | 0x20;
#[cfg(target_os = "macos")]
const MAP_PRIVATE_ANONYMOUS: c_int = 0x02 | 0x1000;
pub(super) const MAP_FAILED: *mut c_void = !0usize as *mut c_void;

extern "C" {
    /// `off_t` is 64 bits on both (LP64).
    fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, offset: i64) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
    fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int;
    fn write(fd: c_int, buf: *const c_void, count: usize) -> isize;
}

#[cfg_attr(
    any(pyalloc_py312, all(target_arch = "x86_64", target_os = "linux")),
    allow(dead_code)
)]
extern "C" {
    fn pthread_self() -> *mut c_void;
}

#[cfg_attr(not(pyalloc_py315), allow(dead_code))]
extern "C" {
    pub(super) fn pthread_atfork(
        prepare: Option<extern "C" fn()>,
        parent: Option<extern "C" fn()>,
        child: Option<extern "C" fn()>,
    ) -> c_int;
    fn sched_yield() -> c_int;
}

/// A block aligned to `align` (a power of two, at least pointer size); NULL
/// on failure. Never freed by pyalloc (counter blocks live for the process);
/// `free` could free it.
pub(crate) fn aligned_alloc(align: usize, size: usize) -> *mut u8 {
    let mut out = core::ptr::null_mut();
    // SAFETY: `out` is a valid place for the result; posix_memalign checks
    // `align` itself and reports failure through its return value.
    match unsafe { posix_memalign(&mut out, align, size) } {
        0 => out.cast(),
        _ => core::ptr::null_mut(),
    }
}

pub(super) fn write_stderr(bytes: &[u8]) {
    // SAFETY: writes a valid byte slice to fd 2.
    unsafe { write(2, bytes.as_ptr().cast(), bytes.len()) };
}

/// What CPython's `PyThread_get_thread_ident()` returns on POSIX
/// (`Python/thread_pthread.h`: `(unsigned long) pthread_self()`), which 3.11
/// stores as a thread state's `thread_id`. `pthread_t` is an integer on glibc
/// and a pointer on macOS; both are 64 bits, as `unsigned long` is (LP64).
#[inline]
#[cfg_attr(any(pyalloc_py312, target_os = "linux"), allow(dead_code))] // 3.11 on aarch64 Linux and macOS
pub(crate) fn thread_ident() -> c_ulong {
    // SAFETY: pthread_self takes no arguments and only reads the thread
    // pointer; it cannot fail.
    unsafe { pthread_self() as usize as c_ulong }
}

/// Gives the processor to another thread.
#[cfg_attr(not(pyalloc_py315), allow(dead_code))] // only 3.15+ builds register fork handlers (tracemalloc.rs)
pub(crate) fn yield_now() {
    // SAFETY: no arguments; only yields the processor.
    unsafe { sched_yield() };
}

/// A new private anonymous mapping of `len` bytes, page-aligned and
/// zero-filled; NULL on failure.
pub(crate) fn map(len: usize) -> *mut u8 {
    // SAFETY: a new private anonymous mapping; failure is MAP_FAILED.
    let map = unsafe {
        mmap(
            core::ptr::null_mut(),
            len,
            PROT_READ_WRITE,
            MAP_PRIVATE_ANONYMOUS,
            -1,
            0,
        )
    };
    if map == MAP_FAILED {
        return core::ptr::null_mut();
    }
    map.cast()
}

/// # Safety
/// `map` and `len` are a live mapping from `map` or `remap`, not used
/// afterwards.
pub(crate) unsafe fn unmap(map: *mut u8, len: usize) {
    // SAFETY: as the caller promises.
    unsafe { munmap(map.cast(), len) };
}

/// `Dl_info` (`<dlfcn.h>`), the same in glibc and dyld.
#[repr(C)]
pub(super) struct DlInfo {
    pub(super) fname: *const c_char,
    pub(super) fbase: *mut c_void,
    pub(super) sname: *const c_char,
    pub(super) saddr: *mut c_void,
}

impl DlInfo {
    /// Empty, for `dladdr` to fill.
    pub(super) const EMPTY: DlInfo = DlInfo {
        fname: core::ptr::null(),
        fbase: core::ptr::null_mut(),
        sname: core::ptr::null(),
        saddr: core::ptr::null_mut(),
    };
}
