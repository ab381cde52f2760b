//! The C library and the OS, called directly: the malloc family (the system
//! private heap and pyalloc's own bookkeeping), the process's random bytes,
//! thread identity and thread-exit callbacks, anonymous mappings, pinning
//! the loaded object, and a fatal stop that allocates nothing. Called
//! directly rather than through `std::alloc::System` because the C API frees
//! blocks whose size it does not know, and because this code runs inside the
//! global allocator. Declared here, per OS, with no binding crate.

use core::ffi::CStr;
use core::ffi::{c_char, c_void};

// The supported targets: 64-bit glibc Linux, macOS, Windows. Each has its
// file below with the same functions (`os`); `unix.rs` holds what Linux and
// macOS share. Pointers are 64 bits everywhere pyalloc runs: the private
// block's header stores a pointer-sized word next to a 16-byte-aligned
// address, and `extern "system"` is the C ABI (only 32-bit x86 Windows
// differs), which the thread-exit callback relies on.
#[cfg(not(all(
    target_pointer_width = "64",
    any(all(target_os = "linux", target_env = "gnu"), target_os = "macos", windows)
)))]
compile_error!("pyalloc supports 64-bit glibc Linux, macOS and Windows");
// windows-gnu (MinGW's ld) has no native thread-locals: std's `thread_local!`
// allocates each thread's slot through the global allocator, which is
// pyalloc, whose first call reads a thread-local (endless recursion), and
// frees it at thread exit after which pyalloc's thread-locals panic.
// windows-msvc and windows-gnullvm have them.
#[cfg(all(windows, target_env = "gnu", not(target_abi = "llvm")))]
compile_error!(
    "pyalloc needs native thread-locals on Windows: build for x86_64-pc-windows-msvc (or -gnullvm), not -gnu"
);

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[path = "linux.rs"]
mod os;
#[cfg(target_os = "macos")]
#[path = "macos.rs"]
mod os;
#[cfg(windows)]
#[path = "windows.rs"]
mod os;
#[cfg(unix)]
mod unix;

mod kept_answer;
pub(crate) mod thread_exit;

pub(crate) use kept_answer::KeptAnswer;

#[cfg(target_os = "linux")]
pub(crate) use os::remap;
#[cfg_attr(
    any(pyalloc_py312, all(target_arch = "x86_64", target_os = "linux")),
    allow(unused_imports)
)] // 3.11 off x86-64 Linux
pub(crate) use os::thread_ident;
#[cfg_attr(not(pyalloc_py315), allow(unused_imports))] // tracemalloc.rs, 3.15+
pub(crate) use os::yield_now;
pub(crate) use os::{
    aligned_alloc, map, process_random_bytes, thread_key_create, thread_key_delete, thread_key_set, unmap,
    ThreadKey,
};

// The C runtime's malloc family, getenv and abort: the same names in glibc,
// macOS's libSystem and Windows' CRT (msvcrt/ucrt; C89 functions).
extern "C" {
    #[link_name = "malloc"]
    fn c_malloc(size: usize) -> *mut c_void;
    #[link_name = "calloc"]
    fn c_calloc(nmemb: usize, size: usize) -> *mut c_void;
    #[link_name = "realloc"]
    fn c_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    #[link_name = "free"]
    fn c_free(ptr: *mut c_void);
    fn getenv(name: *const c_char) -> *const c_char;
    fn abort() -> !;
}

/// `malloc(size)`, or `calloc(1, size)` when `zeroed`; NULL on failure.
pub(crate) fn malloc(size: usize, zeroed: bool) -> *mut u8 {
    // SAFETY: malloc and calloc accept any size and report failure as NULL.
    unsafe {
        if zeroed {
            c_calloc(1, size).cast()
        } else {
            c_malloc(size).cast()
        }
    }
}

/// `realloc`. On failure returns NULL and `block` stays valid.
///
/// # Safety
/// `block` is a live block from this module's allocating functions.
pub(crate) unsafe fn realloc(block: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: the caller passes a live malloc block.
    unsafe { c_realloc(block.cast(), size).cast() }
}

/// # Safety
/// `block` is NULL or a live block from this module's allocating functions,
/// not used afterwards.
pub(crate) unsafe fn free(block: *mut u8) {
    // SAFETY: the caller passes a live malloc block or NULL.
    unsafe { c_free(block.cast()) }
}

/// Keeps the object that holds this copy of pyalloc (the program, or a
/// shared library such as an extension module) loaded for the rest of the
/// process; true when it is. Called before pyalloc registers a callback
/// that outlives the call (`Py_AtExit`): a library unloaded with `dlclose`
/// would leave CPython calling into unmapped memory. The program itself is
/// never unloaded; a shared library is marked `RTLD_NODELETE` by opening it
/// again with that flag (Linux, macOS; the handle is kept on purpose), or
/// pinned with `GetModuleHandleExW(..._PIN)` (Windows). False, and nothing
/// changed, when the object cannot be found or reopened.
pub(crate) fn pin_this_object() -> bool {
    static PINNED: KeptAnswer = KeptAnswer::new();
    PINNED.get(|| Some(os::pin_object_of(pin_this_object as *const c_void)))
}

/// The value of an environment variable, read without allocating (this
/// runs inside the allocator); `None` when it is not set.
pub(crate) fn env(name: &CStr) -> Option<&'static [u8]> {
    // SAFETY: getenv reads the environment; the pointer it returns stays
    // valid until the variable is changed, which pyalloc's callers read
    // once, at set-up.
    let value = unsafe { getenv(name.as_ptr()) };
    // SAFETY: a non-NULL result is a NUL-terminated string.
    (!value.is_null()).then(|| unsafe { CStr::from_ptr(value) }.to_bytes())
}

/// `block`, after checking that it is `align`-aligned: a backend (PyMem, the
/// private heap) that breaks its alignment stops the process with a message
/// rather than handing Rust a misaligned block.
#[inline]
pub(crate) fn checked_alignment(block: *mut u8, align: usize, source: &str) -> *mut u8 {
    if block as usize % align != 0 {
        fatal(source, "returned a block below its guaranteed alignment");
    }
    block
}

/// Writes `pyalloc: fatal: <source> <what>` to stderr and aborts. Allocates
/// nothing, so it is safe inside the allocator.
#[cold]
pub(crate) fn fatal(source: &str, what: &str) -> ! {
    warn_parts(&["pyalloc: fatal: ", source, " ", what, "\n"]);
    // SAFETY: abort takes no arguments and does not return.
    unsafe { abort() }
}

/// Writes the parts to stderr (file descriptor 2), allocating nothing; a
/// failed write is ignored, there is nowhere else to report it.
pub(crate) fn warn_parts(parts: &[&str]) {
    for part in parts {
        os::write_stderr(part.as_bytes());
    }
}

/// Registers fork handlers; false when it failed or the object holding
/// this copy could not be pinned (Apple's `pthread_atfork` keeps handlers
/// for the process, glibc drops them when the object is unloaded: pinned
/// either way). Windows has no `fork`: nothing to register, true.
///
/// # Safety
/// The handlers are safe to run around `fork` and are functions of this
/// copy.
#[cfg_attr(not(pyalloc_py315), allow(dead_code))] // only 3.15+ builds register fork handlers (tracemalloc.rs)
pub(crate) unsafe fn at_fork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> bool {
    #[cfg(unix)]
    // SAFETY: the handlers stay callable once the object is pinned; the
    // caller promises the rest.
    return pin_this_object()
        && unsafe { unix::pthread_atfork(Some(prepare), Some(parent), Some(child)) } == 0;
    #[cfg(windows)]
    {
        let _ = (prepare, parent, child);
        true
    }
}

/// The mapping `map` of `old_len` bytes resized to `new_len`: where there
/// is no `mremap` (macOS, Windows), a new mapping, a copy of the smaller
/// length, and the old one unmapped (slower than Linux, the same result);
/// NULL on failure, leaving it as it was.
///
/// # Safety
/// `map` and `old_len` are a live mapping from `map` or `remap`; on success
/// it is not used afterwards.
#[cfg(not(target_os = "linux"))]
pub(crate) unsafe fn remap(map: *mut u8, old_len: usize, new_len: usize) -> *mut u8 {
    let moved = os::map(new_len);
    if !moved.is_null() {
        // SAFETY: two distinct live mappings, each at least as long as the
        // copy; the old one is the caller's to give up.
        unsafe {
            core::ptr::copy_nonoverlapping(map, moved, old_len.min(new_len));
            os::unmap(map, old_len);
        }
    }
    moved
}
